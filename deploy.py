"""The whole deploy: every stage, in order. `pyinfra inventory.py deploy.py`

Each stage is a file under tasks/ that can also run alone (`pyinfra inventory.py
tasks/etcd.py`). A stage picks its hosts by role, reads what its facts say, and runs
operations that change only what differs, so a second run changes nothing.
"""

from pyinfra import local

STAGES = (
    "preflight",          # the hosts can run what the cluster file asks; nothing is changed
    "prep",               # hostname, /etc/hosts, swap, modules, sysctls, packages, time, firewall
    "container_runtime",  # containerd, runc, CNI plugins, crictl, registry mirrors
    "binaries",           # kubeadm, kubelet, kubectl, checksum verified
    "loadbalancer",       # keepalived + haproxy on the lb hosts
    "kube_vip",           # kube-vip static pod on the control planes
    "etcd",               # external etcd: PKI, systemd unit, membership
    "control_plane",      # kubeadm init on the first control plane, then joins one at a time
    "api_proxy",          # the workers' localhost API proxy (a systemd service)
    "workers",            # kubeadm join
    "calico",             # the pod network
    "kubectl_user",       # a user with its own certificate, RBAC binding and kubeconfig
    "finish",             # schedulable control planes, node labels
    "verify",             # nodes Ready, etcd healthy, the API answers on its endpoint
)

for stage in STAGES:
    local.include(f"tasks/{stage}.py")
