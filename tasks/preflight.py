"""Preflight: every host can run its part of the cluster. Nothing on a host is changed.

Runs on all hosts. Alone: `pyinfra inventory.py tasks/preflight.py` (add `--dry` to see the
verdict without running anything).

A host fails, with a message naming it and each problem, when:
- its system is not one kubeha supports (Ubuntu 22.04/24.04, Debian 12/13, RHEL and Rocky
  Linux 9/10), or prep.time_sync names a service the system has no package for;
- it downloads release files (control planes, workers, external etcd members) and its
  architecture has no pinned sha256 for one of them;
- it runs a kubelet >= 1.35 on cgroup v1 while kubernetes.allow_cgroup_v1 is off;
- it is a control plane with fewer than 2 CPUs or 1700 MB of memory (a worker only warns);
- a CA it holds (Kubernetes, front-proxy, etcd) is another than the local state's: the run
  would replace a live cluster's CA.
It warns about swap a container shares with its machine, an active firewalld or ufw, a
packaged containerd of another version, and a clock not synchronized yet.

The checks run inside one operation (operations/host.py: preflight), so they read the host as
it is when the run starts; a failed host is dropped by pyinfra and no later stage touches it.
"""

import hashlib

from pyinfra import host

from cluster.context import being_removed, cluster, node
from operations import host as host_ops
from operations import stage

stage.begin(name="Stage: Preflight", title="Preflight")

if not being_removed():  # a machine of `remove:` has no part left to run
    me = node()
    local_ca_sha256 = {
        path: hashlib.sha256(local.read_bytes()).hexdigest()
        for path, local in host_ops.ca_files(cluster(), me.roles, host.data).items()
    }
    host_ops.preflight(
        name="Preflight: the host can run its part of the cluster",
        cluster=cluster(),
        node=me,
        local_ca_sha256=local_ca_sha256,
    )
