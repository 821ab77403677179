"""What a lab of many machines needs from the one machine under it: kernel limits and memory.

Every lab machine shares the machine's kernel, and its per-user limits count uid 0 over all
of them. fs.inotify.max_user_instances (128 on a stock kernel) is the one that runs out first:
each Kubernetes node holds about 20 inotify instances (kubelet's cAdvisor, kube-proxy,
systemd, containerd), so with seven or eight machines kubelet fails at start with
"inotify_init: too many open files" and never becomes healthy. `up` raises the fs.* limits
below before it boots anything (recording the machine's own values in state.json first) and
`down` puts the machine's values back; kernel.* and vm.* are never touched.

Memory is the other limit: `up` refuses a layout whose machines, once they run their part of
a cluster, would not fit, and says how much it needs and has.
"""

from __future__ import annotations

from pathlib import Path

from .config import LabConfig
from .proc import LabError

# Raised to at least these values; a machine that already allows more keeps its value.
RAISED_SYSCTLS = {
    "fs.inotify.max_user_instances": 8192,
    "fs.inotify.max_user_watches": 1048576,
}

# What a lab machine uses once its part of a cluster runs (MiB, resident, measured on the lab:
# see docs/lab.md "Capacity"): a booted machine, plus each role it has.
MACHINE_MIB = 60
ROLE_MIB = {"control_plane": 900, "etcd": 120, "worker": 350, "lb": 40}
# Left for the machine itself (the lab's mirror, pyinfra, the tests, page cache).
RESERVE_MIB = 3072


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str) -> str:
    return sysctl_path(key).read_text().strip()


def raise_limits(raised: dict[str, str], progress) -> None:
    """Raise the machine's limits to RAISED_SYSCTLS. RAISED ({key: value written}, kept in
    state.json) is updated, so `status` can tell the lab's own changes from anybody else's."""
    for key, minimum in RAISED_SYSCTLS.items():
        current = int(read_sysctl(key))
        if current >= minimum:
            continue
        sysctl_path(key).write_text(f"{minimum}\n")
        raised[key] = read_sysctl(key)
        progress("sysctl", None, f"{key} {current} -> {minimum} for the lab's machines (`down` restores it)")


def machine_mib(roles) -> int:
    return MACHINE_MIB + sum(ROLE_MIB.get(role, 0) for role in roles)


def memory_total_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise LabError("cannot read MemTotal from /proc/meminfo")


def check_memory(lab: LabConfig, total_mib: int | None = None) -> int:
    """Refuse a lab whose machines would not fit in this machine's memory. Returns the MiB
    the lab needs."""
    total_mib = memory_total_mib() if total_mib is None else total_mib
    need = sum(machine_mib(h.roles) for h in lab.hosts)
    room = total_mib - RESERVE_MIB
    if need > room:
        counts: dict[str, int] = {}
        for h in lab.hosts:
            for role in h.roles or ("none",):
                counts[role] = counts.get(role, 0) + 1
        per_role = ", ".join(f"{n} x {role} ({ROLE_MIB.get(role, 0)} MiB)" for role, n in sorted(counts.items()))
        raise LabError(
            f"lab {lab.name}: {len(lab.hosts)} machines need about {need} MiB of memory once their cluster "
            f"runs ({MACHINE_MIB} MiB each, plus {per_role}), and this machine has {total_mib} MiB, of which "
            f"{RESERVE_MIB} MiB stay for the machine itself: remove hosts from the cluster file"
        )
    return need
