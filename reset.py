"""Resetting the whole cluster: `pyinfra inventory.py reset.py --data reset_confirm=<cluster name>`

Every machine of the cluster file is reset (tasks/reset.py says what goes and what stays); the
local state directory is kept unless asked. `--dry` lists every deletion, host by host. A deploy
on the same machines afterwards (`pyinfra inventory.py deploy.py`) makes a fresh cluster.
"""

from pyinfra import local

local.include("tasks/reset.py")  # confirmed with the cluster's name, then every host reset
