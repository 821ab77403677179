"""Preflight: the host checks, before anything on a host is changed. Nothing is changed here.

Runs on all hosts. Alone: `pyinfra inventory.py tasks/preflight.py` (add `--dry` to see the
verdict without running anything). The cluster file itself was checked before pyinfra
connected anywhere (inventory.py); these checks need each host's facts.

A host fails, with a message naming it and each problem, when:
- its system is not one kubeha supports (Ubuntu 22.04/24.04, Debian 12/13, RHEL and Rocky
  Linux 9/10), or prep.time_sync names a service the system has no package for;
- it downloads release files (control planes, workers, external etcd members) and its
  architecture has no pinned sha256 for one of them;
- it runs a kubelet >= 1.35 on cgroup v1 while kubernetes.allow_cgroup_v1 is off;
- it is a control plane with fewer than 2 CPUs or 1700 MB of memory (a worker only warns);
- it runs a kubelet and has fewer than 64 free inotify instances (fewer than 256 warns);
- a CA it holds (Kubernetes, front-proxy, etcd) is another than the local state's: the run
  would replace a live cluster's CA.
It warns about swap a container shares with its machine, an active firewalld or ufw, a
packaged containerd of another version, and a clock not synchronized yet.

The checks run inside one operation (operations/host_checks.py: check_host; the verdict is
cluster/host_checks.py's), so they read the host as it is when the run starts; a failed host is
dropped by pyinfra and no later stage touches it.
"""

import hashlib

from cluster.context import being_removed, cluster, node, secrets
from cluster.host_checks import ca_files
from operations import stage
from operations.host_checks import check_host

stage.begin(name="Stage: Preflight, the host checks", title="Preflight, the host checks")

if not being_removed():  # a machine of `remove:` has no part left to run
    me = node()
    local_ca_sha256 = {
        path: hashlib.sha256(local.read_bytes()).hexdigest()
        for path, local in ca_files(cluster(), secrets(), me.roles).items()
    }
    check_host(
        name="Check that the host can run its part of the cluster",
        cluster=cluster(),
        node=me,
        local_ca_sha256=local_ca_sha256,
    )
