"""Facts about the API load balancer on a host: whether it holds the virtual IP."""

from __future__ import annotations

import ipaddress

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, sections


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
