"""The lab's network on the machine: one bridge, a netns + veth pair per host, and two
dedicated iptables chains. Every rule matches the lab's bridge only."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import paths
from .config import Host, LabConfig
from .proc import LabError, run

NETNS_DIR = Path("/run/netns")


def _ip_json(*args: str, netns: str | None = None) -> list:
    argv = ["ip", "-j", *args] if netns is None else ["ip", "-n", netns, "-j", *args]
    cp = run(argv, check=False)
    if cp.returncode != 0 or not cp.stdout.strip():
        return []
    return json.loads(cp.stdout)


def link(name: str, netns: str | None = None) -> dict | None:
    found = _ip_json("addr", "show", "dev", name, netns=netns)
    return found[0] if found else None


def links_with_prefix(prefix: str) -> list[str]:
    return [l["ifname"] for l in _ip_json("link", "show") if l.get("ifname", "").startswith(prefix)]


def lab_veths() -> list[str]:
    """Host-side veths of the lab: named kh-* AND attached to the lab's bridge (a kh-* link
    of anyone else is never touched)."""
    return [
        l["ifname"]
        for l in _ip_json("link", "show")
        if l.get("ifname", "").startswith(paths.VETH_PREFIX) and l.get("master") == paths.BRIDGE
    ]


def netns_list() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(os.listdir(NETNS_DIR))


def _addrs(info: dict) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("family") == "inet"}


def _set_sysctl_file(path: str, value: str) -> None:
    # Only net.* entries of the lab's own interfaces (they vanish with the interfaces).
    try:
        Path(path).write_text(value)
    except OSError:
        pass


# ---- bridge -----------------------------------------------------------------------------


def check_no_conflict(lab: LabConfig) -> None:
    """Refuse to build on a network some other interface of the machine already uses."""
    import ipaddress

    net = ipaddress.ip_network(lab.node_cidr)
    for l in _ip_json("addr", "show"):
        if l.get("ifname") == paths.BRIDGE:
            continue
        for a in l.get("addr_info", []):
            if a.get("family") == "inet" and ipaddress.ip_address(a["local"]) in net:
                raise LabError(
                    f"interface {l['ifname']} already has {a['local']}, inside the lab network {net}"
                )


def ensure_bridge(lab: LabConfig) -> bool:
    """Create/repair the bridge with the gateway address. True if something changed."""
    changed = False
    want = f"{lab.gateway}/{lab.prefixlen}"
    info = link(paths.BRIDGE)
    if info is None:
        run(["ip", "link", "add", paths.BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        _set_sysctl_file(f"/proc/sys/net/ipv6/conf/{paths.BRIDGE}/disable_ipv6", "1")
        changed = True
        info = link(paths.BRIDGE)
    elif info.get("linkinfo", {}).get("info_kind", "bridge") != "bridge":
        raise LabError(f"{paths.BRIDGE} exists and is not a bridge")
    have = _addrs(info)
    for a in have - {want}:
        run(["ip", "addr", "del", a, "dev", paths.BRIDGE])
        changed = True
    if want not in have:
        run(["ip", "addr", "add", want, "dev", paths.BRIDGE])
        changed = True
    if "UP" not in info.get("flags", []):
        run(["ip", "link", "set", paths.BRIDGE, "up"])
        changed = True
    return changed


def remove_bridge() -> bool:
    if link(paths.BRIDGE) is None:
        return False
    run(["ip", "link", "del", paths.BRIDGE])
    return True


# ---- per host: netns + veth ---------------------------------------------------------------


def host_net_ok(lab: LabConfig, host: Host) -> bool:
    if host.netns not in netns_list():
        return False
    veth = link(host.veth)
    if veth is None or veth.get("master") != paths.BRIDGE:
        return False
    eth0 = link("eth0", netns=host.netns)
    # the host's own address; others are the cluster's (a VIP keepalived or kube-vip put there)
    if eth0 is None or f"{host.address}/{lab.prefixlen}" not in _addrs(eth0):
        return False
    routes = _ip_json("route", "show", "default", netns=host.netns)
    return any(r.get("gateway") == lab.gateway for r in routes)


def ensure_host_net(lab: LabConfig, host: Host) -> bool:
    """netns kubeha-NAME with eth0 (address, default route via the gateway), its peer
    kh-NAME on the bridge. Rebuilt from scratch when anything is off. True if it changed."""
    if host_net_ok(lab, host):
        if "UP" not in (link(host.veth) or {}).get("flags", []):
            pass  # a cut link stays cut: `heal` brings it back
        return False
    delete_host_net(host.name)
    run(["ip", "netns", "add", host.netns])
    ns = ["ip", "-n", host.netns]
    run([*ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    _set_sysctl_file(f"/proc/sys/net/ipv6/conf/{host.veth}/disable_ipv6", "1")
    run(["ip", "link", "set", host.veth, "master", paths.BRIDGE])
    run(["ip", "link", "set", host.veth, "up"])
    run([*ns, "addr", "add", f"{host.address}/{lab.prefixlen}", "dev", "eth0"])
    run([*ns, "link", "set", "eth0", "up"])
    run([*ns, "route", "add", "default", "via", lab.gateway, "dev", "eth0"])
    return True


def delete_host_net(name: str) -> None:
    veth = paths.VETH_PREFIX + name
    if (link(veth) or {}).get("master") == paths.BRIDGE:
        run(["ip", "link", "del", veth], check=False)
    ns = paths.NETNS_PREFIX + name
    if ns in netns_list():
        run(["ip", "netns", "del", ns])


def link_up(host: Host) -> bool | None:
    """True if the host's link is up, False if cut, None if it has none."""
    info = link(host.veth)
    if info is None:
        return None
    return "UP" in info.get("flags", [])


def set_link(host: Host, up: bool) -> None:
    if link(host.veth) is None:
        raise LabError(f"{host.name} has no network link (is the lab up?)")
    run(["ip", "link", "set", host.veth, "up" if up else "down"])


# ---- firewall ---------------------------------------------------------------------------


def _ipt(*args: str, check: bool = True):
    return run(["iptables", "-w", "10", *args], check=check)


def _chain_rules(lab: LabConfig) -> dict[str, list[list[str]]]:
    br = paths.BRIDGE
    ports = f"{paths.FILES_PORT},{paths.REGISTRY_PORT},{paths.APT_PROXY_PORT}"
    return {
        # Traffic between lab hosts crosses FORWARD (bridge-nf-call-iptables=1): VRRP,
        # VXLAN, the API... all allowed. Nothing is routed into or out of the lab.
        paths.FW_CHAIN_FORWARD: [
            ["-i", br, "-o", br, "-j", "ACCEPT"],
            ["-j", "DROP"],
        ],
        # What hosts may reach on the machine itself: the mirror ports on the gateway
        # address, ping to it, and answers to connections the machine opened (ssh).
        paths.FW_CHAIN_INPUT: [
            ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
            ["-d", lab.gateway, "-p", "tcp", "-m", "multiport", "--dports", ports, "-j", "ACCEPT"],
            ["-d", lab.gateway, "-p", "icmp", "--icmp-type", "echo-request", "-j", "ACCEPT"],
            ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
            ["-j", "REJECT"],
        ],
    }


def _jumps() -> list[tuple[str, list[str]]]:
    br = paths.BRIDGE
    return [
        ("FORWARD", ["-i", br, "-j", paths.FW_CHAIN_FORWARD]),
        ("FORWARD", ["-o", br, "-j", paths.FW_CHAIN_FORWARD]),
        ("INPUT", ["-i", br, "-j", paths.FW_CHAIN_INPUT]),
    ]


def _chain_exists(chain: str) -> bool:
    return _ipt("-S", chain, check=False).returncode == 0


def firewall_ok(lab: LabConfig) -> bool:
    for chain, rules in _chain_rules(lab).items():
        cp = _ipt("-S", chain, check=False)
        if cp.returncode != 0:
            return False
        have = [l for l in cp.stdout.splitlines() if l.startswith("-A ")]
        if len(have) != len(rules):
            return False
        for rule in rules:
            if _ipt("-C", chain, *rule, check=False).returncode != 0:
                return False
    return all(_ipt("-C", parent, *rule, check=False).returncode == 0 for parent, rule in _jumps())


def ensure_firewall(lab: LabConfig) -> bool:
    if firewall_ok(lab):
        return False
    for chain, rules in _chain_rules(lab).items():
        if _chain_exists(chain):
            _ipt("-F", chain)
        else:
            _ipt("-N", chain)
        for rule in rules:
            _ipt("-A", chain, *rule)
    for parent, rule in reversed(_jumps()):
        if _ipt("-C", parent, *rule, check=False).returncode != 0:
            _ipt("-I", parent, "1", *rule)
    return True


def remove_firewall() -> bool:
    """Remove every jump to the lab's chains, then the chains. True if anything was there."""
    found = False
    for parent in ("FORWARD", "INPUT", "OUTPUT"):
        cp = _ipt("-S", parent, check=False)
        for line in cp.stdout.splitlines():
            words = line.split()
            if line.startswith("-A ") and words[-1] in (paths.FW_CHAIN_FORWARD, paths.FW_CHAIN_INPUT):
                _ipt("-D", *words[1:], check=False)
                found = True
    for chain in (paths.FW_CHAIN_FORWARD, paths.FW_CHAIN_INPUT):
        if _chain_exists(chain):
            _ipt("-F", chain)
            _ipt("-X", chain)
            found = True
    return found


def firewall_present() -> bool:
    return any(_chain_exists(c) for c in (paths.FW_CHAIN_FORWARD, paths.FW_CHAIN_INPUT))


def ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


def netns_dir_is_mount() -> bool:
    return os.path.ismount(NETNS_DIR)
