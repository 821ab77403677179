"""Facts about systemd units on a host: whether a unit is installed, enabled or masked, and which
program a running service executes."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase
from typing_extensions import override


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


class UnitFileState(FactBase[str | None]):
    """
    The unit file state of ``unit`` as ``systemctl is-enabled`` prints it: enabled, disabled,
    static, masked, ...; None when systemd does not answer (no such unit, no systemd).
    """

    @override
    def command(self, unit: str) -> str:
        return f"systemctl is-enabled {shlex.quote(unit)} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> str | None:
        return "".join(output).strip() or None


class ServiceExecutable(FactBase[str | None]):
    """
    The program the running ``service`` executes (its main process's /proc/PID/exe), None
    when it does not run. A program replaced on disk since it started ends in " (deleted)".
    """

    @override
    def command(self, service: str) -> str:
        return (f"pid=$(systemctl show -p MainPID --value {shlex.quote(service)} 2>/dev/null); "
                'if [ -n "$pid" ] && [ "$pid" != 0 ]; then readlink "/proc/$pid/exe"; fi; true')

    @override
    def process(self, output: list[str]) -> str | None:
        return "".join(output).strip() or None
