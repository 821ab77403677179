"""Facts about the host itself: its size, whether it is a container, swap, cgroup version, time
sync, kernel modules, SELinux labels, inotify limits and any other firewall."""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, sections


def _unescape(name: str) -> str:
    """/proc/swaps and /etc/fstab write a space in a path as \\040."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), name)


class SwapState(FactBase[dict]):
    """
    The swap in use (the devices or files in /proc/swaps) and the lines of /etc/fstab that
    mount swap (uncommented lines of type ``swap``; only those lines are printed).

    .. code:: python

        {"active": ["/dev/vda3"], "fstab": ["UUID=0a1b... none swap sw 0 0"]}
    """

    @staticmethod
    def default() -> dict:
        return {"active": [], "fstab": []}

    @override
    def command(self) -> str:
        return (
            f"echo '{MARKER}active'; cat /proc/swaps 2>/dev/null || true; "
            f"echo '{MARKER}fstab'; "
            "awk '$1 !~ /^#/ && $3 == \"swap\"' /etc/fstab 2>/dev/null || true"
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        active = []
        for line in parts.get("active", ("", []))[1]:
            fields = line.split()
            if fields and fields[0] != "Filename":
                active.append(_unescape(fields[0]))
        fstab = []
        for line in parts.get("fstab", ("", []))[1]:
            fields = line.split()
            if len(fields) >= 3 and not fields[0].startswith("#") and fields[2] == "swap":
                fstab.append(line.strip())
        return {"active": active, "fstab": fstab}


class CgroupVersion(FactBase[int | None]):
    """
    The cgroup version the host runs: 2 when /sys/fs/cgroup is a cgroup2 file system
    (``stat -fc %T``), 1 for anything else there (tmpfs with v1 hierarchies), None when it
    cannot be read.
    """

    @override
    def command(self) -> str:
        return "stat -fc %T /sys/fs/cgroup 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> int | None:
        fs_type = "".join(output).strip()
        if not fs_type:
            return None
        return 2 if fs_type == "cgroup2fs" else 1


class TimeSync(FactBase[dict]):
    """
    Which time-sync service is active (``systemctl is-active`` of chrony, chronyd and
    systemd-timesyncd; chronyd is reported as "chrony") and whether the clock is synchronized
    (``timedatectl show -p NTPSynchronized --value``). Without systemd both are unknown:
    service None, synchronized False.

    .. code:: python

        {"service": "chrony", "synchronized": True}
    """

    SERVICES = {"chrony": "chrony", "chronyd": "chrony", "systemd-timesyncd": "systemd-timesyncd"}

    @staticmethod
    def default() -> dict:
        return {"service": None, "synchronized": False}

    @override
    def command(self) -> str:
        return (
            f'echo "{MARKER}synchronized $(timedatectl show -p NTPSynchronized --value 2>/dev/null)"; '
            "for s in chrony chronyd systemd-timesyncd; do "
            f'echo "{MARKER}$s $(systemctl is-active $s 2>/dev/null)"; done'
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        state = self.default()
        state["synchronized"] = parts.get("synchronized", ("", []))[0] == "yes"
        for unit, service in self.SERVICES.items():
            if parts.get(unit, ("", []))[0] == "active":
                state["service"] = service
                break
        return state


def _key_values(output: list[str]) -> dict[str, str]:
    """``key=value`` lines as a dict (other lines are left out)."""
    values = {}
    for line in output:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _int(value: str | None) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class Resources(FactBase[dict]):
    """
    The host's CPUs (``nproc``) and memory (MemTotal of /proc/meminfo, in MB); None for what
    cannot be read.

    .. code:: python

        {"cpus": 4, "memory_mb": 7812}
    """

    @staticmethod
    def default() -> dict:
        return {"cpus": None, "memory_mb": None}

    @override
    def command(self) -> str:
        return ("echo cpus=$(nproc 2>/dev/null); "
                "awk '/^MemTotal:/ {print \"mem_kb=\" $2}' /proc/meminfo 2>/dev/null; true")

    @override
    def process(self, output: list[str]) -> dict:
        values = _key_values(output)
        mem_kb = _int(values.get("mem_kb"))
        return {"cpus": _int(values.get("cpus")), "memory_mb": mem_kb // 1024 if mem_kb else None}


class Container(FactBase[str | None]):
    """
    The container technology the host runs in (``systemd-detect-virt --container``:
    systemd-nspawn, lxc, docker, ...), None on a machine of its own.
    """

    @override
    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> str | None:
        found = "".join(output).strip()
        return found if found and found != "none" else None


class OtherFirewalls(FactBase[list]):
    """
    The host firewalls besides kubeha's own table that are active: firewalld (``systemctl
    is-active``) and ufw (``ENABLED=yes`` in /etc/ufw/ufw.conf), sorted.

    .. code:: python

        ["firewalld"]
    """

    default = list

    @override
    def command(self) -> str:
        return ("systemctl is-active firewalld 2>/dev/null | sed 's/^/firewalld=/'; "
                "grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf && echo ufw=active; true")

    @override
    def process(self, output: list[str]) -> list:
        return sorted(name for name, status in _key_values(output).items() if status == "active")


# How to tell a module is there: built-in modules have no /sys/module entry when they take no
# parameters, so look for what the module provides.
MODULE_PROVIDES = {
    "overlay": "grep -qw overlay /proc/filesystems",
    "br_netfilter": "test -e /proc/sys/net/bridge/bridge-nf-call-iptables",
}


class KernelModules(FactBase[list]):
    """
    Which of ``modules`` the kernel has now, loaded or built in (a /sys/module entry, or what
    the module provides: overlay in /proc/filesystems, br_netfilter's bridge sysctls), in the
    order given.

    .. code:: python

        ["overlay"]
    """

    default = list

    @override
    def command(self, modules: list[str]) -> str:
        probe = "; ".join(
            f"if test -d /sys/module/{m} || {MODULE_PROVIDES.get(m, 'false')}; then echo {m}; fi"
            for m in modules
        )
        return f"{probe}; true"

    @override
    def process(self, output: list[str]) -> list:
        return " ".join(output).split()


class SelinuxPendingLabels(FactBase[list]):
    """
    The files under ``paths`` whose SELinux label differs from the policy's (``restorecon -R
    -n -v``: what a relabel would change, one line each); ``[]`` when none does, or without
    restorecon.

    .. code:: python

        ["Would relabel /usr/local/bin/runc from user_tmp_t to bin_t"]
    """

    default = list

    @override
    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return f"restorecon -R -n -v {quoted} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> list:
        return [line.strip() for line in output if line.strip()]


class InotifyUsage(FactBase[dict]):
    """
    The host's inotify limits (fs.inotify.max_user_instances and max_user_watches) and the
    inotify instances root's processes hold now (``anon_inode:inotify`` among /proc/*/fd; the
    limit counts per user, and the kubelet runs as root; an instance shared by two fds counts
    twice). None for what cannot be read.

    .. code:: python

        {"max_user_instances": 128, "max_user_watches": 65536, "instances": 40}
    """

    @staticmethod
    def default() -> dict:
        return {"max_user_instances": None, "max_user_watches": None, "instances": None}

    @override
    def command(self) -> str:
        return (
            'echo "max_user_instances=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null)"; '
            'echo "max_user_watches=$(cat /proc/sys/fs/inotify/max_user_watches 2>/dev/null)"; '
            "echo \"instances=$(find /proc/[0-9]*/fd -user 0 -lname 'anon_inode:inotify' 2>/dev/null | wc -l)\""
        )

    @override
    def process(self, output: list[str]) -> dict:
        values = _key_values(output)
        return {key: _int(values.get(key)) for key in self.default()}
