"""Facts about the host itself that kubeadm cares about: swap, cgroup version, time sync."""

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


class UnitInstalled(FactBase[bool]):
    """
    Whether systemd knows the unit ``unit`` (``systemctl show -p LoadState``: "loaded"). False
    before the package that ships it is installed (LoadState "not-found").
    """

    default = bool

    @override
    def requires_command(self, unit: str) -> str:
        return "systemctl"

    @override
    def command(self, unit: str) -> str:
        return f"systemctl show -p LoadState --value -- {shlex.quote(unit)} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> bool:
        return bool(output) and output[0].strip() == "loaded"
