"""Facts about the API load balancer on a host: whether it holds the virtual IP, and what
haproxy thinks of each apiserver behind it."""

from __future__ import annotations

import csv
import ipaddress
import shlex

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, UNREACHABLE, sections


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address in ``value`` ("10.123.0.10" or "10.123.0.10/32"); ValueError if none."""
    return ipaddress.ip_interface(value.strip()).ip


class VipHolder(FactBase[bool]):
    """
    Whether this host has the address ``vip`` on one of its interfaces right now
    (``ip -o addr show to VIP``), whatever its prefix length or label.
    """

    default = bool

    @override
    def requires_command(self, vip: str) -> str:
        return "ip"

    @override
    def command(self, vip: str) -> str:
        address = _address(vip)  # refuses anything but an address: it goes into the command
        return f"echo '{MARKER}vip {address}'; ip -o addr show to {address} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> bool:
        try:
            wanted = _address(sections(output).get("vip", ("", []))[0])
        except ValueError:
            return False
        for line in output:
            fields = line.split()
            # "3: eth0    inet 10.123.0.10/32 scope global eth0\ ..."
            if len(fields) >= 4 and fields[2] in ("inet", "inet6"):
                try:
                    if _address(fields[3]) == wanted:
                        return True
                except ValueError:
                    continue
        return False


class HaproxyBackendsUp(FactBase[dict | None]):
    """
    Whether haproxy sees each server of ``backend`` as up, read from its stats page as CSV
    (``curl URL;csv``; the lb hosts serve it at ``http://ADDRESS:STATS_PORT/stats``).

    A server is up while haproxy sends it connections: its status starts with "UP" (also
    "UP 1/3", failing checks but still serving) or is "no check"; DOWN (also "DOWN 1/2",
    recovering), MAINT, DRAIN and NOLB are not. None when the stats page does not answer
    or the backend is not on it.

    .. code:: python

        {"cp1": True, "cp2": False, "cp3": True}
    """

    @override
    def requires_command(self, url: str, backend: str = "kube-apiserver") -> str:
        return "curl"

    @override
    def command(self, url: str, backend: str = "kube-apiserver") -> str:
        # The backend's name goes first so that process() knows which rows to read.
        return (
            f"echo {shlex.quote(f'{MARKER}backend {backend}')}; "
            f"curl -sf --max-time 5 {shlex.quote(url + ';csv')} 2>/dev/null || echo '{UNREACHABLE}'"
        )

    @override
    def process(self, output: list[str]) -> dict | None:
        if UNREACHABLE in output:
            return None
        backend = sections(output).get("backend", ("", []))[0]
        rows = [line for line in output if not line.startswith(MARKER)]
        if not rows or not rows[0].startswith("# "):
            return None
        # The first line names the columns: "# pxname,svname,qcur,...,status,..."
        reader = csv.DictReader([rows[0][2:]] + rows[1:])
        servers = {}
        for row in reader:
            name, status = row.get("svname"), row.get("status") or ""
            if row.get("pxname") != backend or not name or name in ("FRONTEND", "BACKEND"):
                continue
            servers[name] = status.startswith("UP") or status == "no check"
        return servers or None
