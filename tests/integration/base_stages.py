"""The stages that need no Kubernetes binaries, as one deploy (the integration tier runs it)."""

from pyinfra import local

local.include("tasks/preflight.py")
local.include("tasks/prep.py")
local.include("tasks/container_runtime.py")
local.include("tasks/loadbalancer.py")
local.include("tasks/etcd.py")
