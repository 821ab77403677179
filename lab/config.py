"""The parts of a cluster file the lab reads, checked once, typed.

The lab reads `name`, `hosts`, `network.node_cidr`, `api.vip`, `ssh` and the `lab:` section.
Everything else in the file belongs to the deploy and is ignored here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import paths

# Every lab address must lie in this network: the lab never sends anything elsewhere.
LAB_SUPERNET = ipaddress.ip_network("10.123.0.0/24")

HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")  # "kh-" + 12 chars fits IFNAMSIZ
LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SUITE_RE = re.compile(r"^[a-z]+$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ConfigError(Exception):
    """The cluster file cannot be used by the lab; the message says why and where."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...] = ()

    @property
    def netns(self) -> str:
        return paths.NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return paths.VETH_PREFIX + self.name


@dataclass(frozen=True)
class LabConfig:
    name: str
    hosts: tuple[Host, ...]
    node_cidr: str
    gateway: str
    suite: str
    ssh_user: str
    ssh_key: str
    known_hosts: str
    vips: tuple[str, ...] = ()
    source: str = field(default="", compare=False)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.node_cidr).prefixlen

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(
            f"no host {name!r} in lab {self.name} (hosts: {', '.join(h.name for h in self.hosts)})"
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        d["hosts"] = [{"name": h.name, "address": h.address, "roles": list(h.roles)} for h in self.hosts]
        d["vips"] = list(self.vips)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> "LabConfig":
        return cls(
            name=d["name"],
            hosts=tuple(Host(h["name"], h["address"], tuple(h.get("roles", ()))) for h in d["hosts"]),
            node_cidr=d["node_cidr"],
            gateway=d["gateway"],
            suite=d["suite"],
            ssh_user=d["ssh_user"],
            ssh_key=d["ssh_key"],
            known_hosts=d["known_hosts"],
            vips=tuple(d.get("vips", ())),
            source=source,
        )

    def fingerprint(self) -> str:
        """Identity of the lab as a site: its name, network, suite and ssh settings, not its
        hosts. Two configs with the same fingerprint are the same lab, which grows by the hosts
        one of them adds (`up`) and shrinks only when asked (`down NAME`, `up --prune`)."""
        site = self.to_dict()
        del site["hosts"], site["vips"]
        blob = json.dumps(site, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def grown_by(self, wanted: "LabConfig", prune: bool = False) -> tuple["LabConfig", list[Host]]:
        """This running lab with the hosts of WANTED (the same lab): WANTED's hosts in
        its order, then this lab's other hosts, which are kept unless PRUNE. Returns the new
        lab and the hosts it no longer has."""
        wanted_names = {h.name for h in wanted.hosts}
        others = [h for h in self.hosts if h.name not in wanted_names]
        kept = [] if prune else others
        grown = replace(wanted, hosts=tuple(wanted.hosts) + tuple(kept))
        wanted_addresses = {h.address: h.name for h in wanted.hosts} | {v: "api.vip" for v in wanted.vips}
        for h in kept:
            if h.address in wanted_addresses:
                raise ConfigError(
                    f"{wanted.source}: {wanted_addresses[h.address]} has address {h.address}, which the running "
                    f"lab's host {h.name} has: remove that host first (`python3 -m lab down {h.name}`, or "
                    "`up --prune`)"
                )
        return grown, ([] if kept else others)


def _req(mapping: dict, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping or mapping[key] in (None, ""):
        raise ConfigError(f"{where}: missing '{key}'")
    return mapping[key]


def _section(doc: dict, key: str, where: str) -> dict:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be a mapping")
    return value


def _ipv4(value, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not an IPv4 address") from None


def parse(doc, source: str = "<cluster file>") -> LabConfig:
    """Check a loaded cluster file and return what the lab needs from it."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: the cluster file must be a YAML mapping")
    name = str(_req(doc, "name", source))
    if not LAB_NAME_RE.match(name):
        raise ConfigError(f"{source}: name {name!r} must be lower-case letters, digits and '-'")

    network = _section(doc, "network", source)
    cidr_text = str(_req(network, "node_cidr", f"{source}: network"))
    try:
        cidr = ipaddress.ip_network(cidr_text, strict=True)
    except ValueError as e:
        raise ConfigError(f"{source}: network.node_cidr {cidr_text!r}: {e}") from None
    if cidr.version != 4 or not cidr.subnet_of(LAB_SUPERNET):
        raise ConfigError(
            f"{source}: network.node_cidr {cidr} must lie inside the lab network {LAB_SUPERNET}"
        )
    if cidr.prefixlen > 29:
        raise ConfigError(f"{source}: network.node_cidr {cidr} is too small")

    lab = _section(doc, "lab", source)
    gateway = _ipv4(lab.get("gateway") or next(cidr.hosts()), f"{source}: lab.gateway")
    suite = str(lab.get("suite") or "trixie")
    if not SUITE_RE.match(suite):
        raise ConfigError(f"{source}: lab.suite {suite!r} is not a Debian suite name")

    def usable(addr: ipaddress.IPv4Address, what: str) -> None:
        if addr not in cidr or addr in (cidr.network_address, cidr.broadcast_address):
            raise ConfigError(f"{source}: {what} {addr} is not a usable address of {cidr}")

    usable(gateway, "lab.gateway")

    hosts_doc = doc.get("hosts")
    if not isinstance(hosts_doc, list) or not hosts_doc:
        raise ConfigError(f"{source}: 'hosts' must be a non-empty list")
    hosts: list[Host] = []
    seen_names: set[str] = set()
    seen_addrs: dict[str, str] = {str(gateway): "lab.gateway"}
    for i, h in enumerate(hosts_doc):
        where = f"{source}: hosts[{i}]"
        hname = str(_req(h, "name", where))
        if not HOST_NAME_RE.match(hname):
            raise ConfigError(
                f"{where}: host name {hname!r} must match {HOST_NAME_RE.pattern} "
                "(it also names the host's network namespace and veth)"
            )
        if hname in seen_names:
            raise ConfigError(f"{where}: duplicate host name {hname!r}")
        addr = _ipv4(_req(h, "address", where), f"{where} ({hname})")
        usable(addr, f"hosts[{i}] ({hname}) address")
        if str(addr) in seen_addrs:
            raise ConfigError(f"{where}: address {addr} is already used by {seen_addrs[str(addr)]}")
        roles = h.get("roles") or []
        if not isinstance(roles, list):
            raise ConfigError(f"{where}: roles must be a list")
        seen_names.add(hname)
        seen_addrs[str(addr)] = hname
        hosts.append(Host(hname, str(addr), tuple(str(r) for r in roles)))

    vips: list[str] = []
    api = _section(doc, "api", source)
    if api.get("vip"):
        vip = _ipv4(api["vip"], f"{source}: api.vip")
        usable(vip, "api.vip")
        if str(vip) in seen_addrs:
            raise ConfigError(f"{source}: api.vip {vip} is already used by {seen_addrs[str(vip)]}")
        vips.append(str(vip))

    ssh = _section(doc, "ssh", source)
    user = str(ssh.get("user") or "kube")
    if not USER_RE.match(user) or user == "root":
        raise ConfigError(f"{source}: ssh.user {user!r} must be a plain non-root user name")
    key = str(ssh.get("key") or paths.SSH_DIR / "id_ed25519")
    known_hosts = str(ssh.get("known_hosts_file") or paths.SSH_DIR / "known_hosts")
    for what, p in (("ssh.key", key), ("ssh.known_hosts_file", known_hosts)):
        if not os.path.isabs(p):
            raise ConfigError(f"{source}: {what} {p!r} must be an absolute path")

    return LabConfig(
        name=name,
        hosts=tuple(hosts),
        node_cidr=str(cidr),
        gateway=str(gateway),
        suite=suite,
        ssh_user=user,
        ssh_key=key,
        known_hosts=known_hosts,
        vips=tuple(vips),
        source=source,
    )


def load(path: str | os.PathLike) -> LabConfig:
    """Read and check a cluster file."""
    import yaml  # only this module needs PyYAML

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read cluster file {p}: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse(doc, str(p))


def default_cluster_file() -> Path:
    """$KUBEHA_CLUSTER, else lab/clusters/ha.yaml of this repository."""
    env = os.environ.get("KUBEHA_CLUSTER")
    return Path(env) if env else paths.DEFAULT_CLUSTER_FILE
