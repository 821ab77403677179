"""The whole deploy: every stage, in order. `pyinfra inventory.py deploy.py`

Each stage is a file under tasks/ that can also run alone (`pyinfra inventory.py
tasks/etcd.py`). A stage picks its hosts by role, reads what its facts say, and runs
operations that change only what differs, so a second run changes nothing.

One include per line, never a loop: pyinfra orders and identifies operations by the source
lines of their call stack, so stages included from one line would share operation identities.
"""

from pyinfra import local

local.include("tasks/preflight.py")          # the host checks: each host can run its part; nothing is changed
local.include("tasks/prep.py")               # hostname, /etc/hosts, swap, modules, sysctls, packages, time, firewall
local.include("tasks/container_runtime.py")  # containerd, runc, CNI plugins, crictl, registry mirrors
local.include("tasks/binaries.py")           # kubeadm, kubelet, kubectl, checksum verified
local.include("tasks/loadbalancer.py")       # keepalived + haproxy on the lb hosts
local.include("tasks/kube_vip.py")           # kube-vip static pod on the control planes
local.include("tasks/etcd.py")               # external etcd: PKI, systemd unit, membership
local.include("tasks/control_plane.py")      # kubeadm init on the first control plane, then joins one at a time
local.include("tasks/api_proxy.py")          # the workers' localhost API proxy
local.include("tasks/workers.py")            # kubeadm join
local.include("tasks/remove_nodes.py")       # the nodes of remove: drained, out of etcd, reset, deleted
local.include("tasks/certificates.py")       # kubeadm's certificates renewed when due, one control plane at a time
local.include("tasks/calico.py")             # the pod network
local.include("tasks/kubectl_user.py")       # a user with its own certificate, RBAC binding and kubeconfig
local.include("tasks/finish.py")             # schedulable control planes, node labels
local.include("tasks/etcd_backup.py")        # etcd snapshots on a timer, the newest copied into the local state
local.include("tasks/verify.py")             # nodes Ready, etcd healthy, the API answers; the cluster report
