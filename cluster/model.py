"""The cluster definition, loaded from its YAML file and filled from the schema's defaults.

`load(path)` returns a Cluster and the list of problems found while reading it; validation
(cluster/validation.py) adds the checks that need the whole picture. Nothing here touches a host.
"""

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace

import yaml

from cluster.schema import HOST_KEYS, HOST_SSH_KEYS, KNOBS, REMOVAL_KEYS, ROLES, sections, yaml_text

VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self):
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple
    ssh_user: str
    ssh_key: str
    ssh_port: int
    labels: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Cluster:
    source: Path
    hosts: list
    settings: dict  # {section: SimpleNamespace} and plain values for top-level knobs
    removals: list = field(default_factory=list)  # `remove:`: Hosts (no roles) to take out of the cluster

    def __getattr__(self, name):
        try:
            return self.__dict__["settings"][name]
        except KeyError:
            raise AttributeError(name) from None

    def group(self, role):
        return [host for host in self.hosts if role in host.roles]

    @property
    def control_planes(self):
        return self.group("control_plane")

    @property
    def first_control_plane(self):
        """The host that runs `kubeadm init`: the first control plane in the file's order."""
        planes = self.control_planes
        return planes[0] if planes else None

    @property
    def etcd_hosts(self):
        return self.group("etcd")

    @property
    def lb_hosts(self):
        return self.group("lb")

    def host(self, name):
        return next((h for h in self.hosts if h.name == name), None)

    def removal(self, name):
        """The `remove:` entry of this name, or None."""
        return next((h for h in self.removals if h.name == name), None)

    @cached_property
    def api_address(self):
        """Address clients outside the cluster use for the API (VIP, external LB or first CP)."""
        if self.api.mode in ("keepalived_haproxy", "kube_vip"):
            return self.api.vip
        if self.api.mode == "external":
            return self.api.external_address
        first = self.first_control_plane
        return first.address if first else None

    @property
    def control_plane_endpoint(self):
        return f"{self.api.endpoint_name}:{self.api.port}"

    def uses_localhost_proxy(self, host):
        """Whether this host reaches the API through its own proxy on 127.0.0.1."""
        if "worker" not in host.roles:
            return False
        return self.workers.api_access == "localhost_proxy" or self.api.mode == "none"

    def endpoint_address_for(self, host):
        """What `api.endpoint_name` resolves to on this host, in its /etc/hosts."""
        if self.uses_localhost_proxy(host):
            return "127.0.0.1"
        if self.api.mode == "none":
            # client-side only: the other hosts talk to the first control plane's apiserver
            return self.first_control_plane.address
        return self.api_address

    @property
    def state_dir(self):
        base = os.environ.get("KUBEHA_STATE_DIR") or os.path.expanduser("~/.local/state/kubeha")
        return Path(base) / self.name


def report(source, problems, what):
    """`SOURCE: N what:` and a line per problem: how errors and warnings are printed."""
    return "\n".join([f"{source}: {len(problems)} {what}:"] + [f"  - {problem}" for problem in problems])


class ClusterFileError(Exception):
    def __init__(self, source, problems):
        self.source = source
        self.problems = problems
        super().__init__(report(source, problems, "problem(s) in the cluster definition"))


class _StrictLoader(yaml.SafeLoader):
    """yaml's SafeLoader, which also lists every key given twice in one mapping: plain YAML keeps
    the last one silently, so a second `api:` block would quietly replace the first."""

    def __init__(self, text):
        super().__init__(text)
        self.duplicate_keys = []  # (field, first line, second line)

    def construct_document(self, node):
        self.duplicate_keys += _duplicate_keys(node, "", set())
        return super().construct_document(node)


def _parse(text):
    """The YAML document in `text`, and (field, first line, second line) of each key given twice."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data(), loader.duplicate_keys
    finally:
        loader.dispose()


def _duplicate_keys(node, where, seen_nodes):
    """(field, first line, second line) of each key given twice, at any depth under `node`.
    Fields are named as in the other problems: `api.port`, `hosts[w1].address`."""
    if id(node) in seen_nodes:  # an alias: its anchor's node was walked already
        return []
    seen_nodes.add(id(node))
    found = []
    if isinstance(node, yaml.MappingNode):
        first_lines = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            field = f"{where}.{key_node.value}" if where else key_node.value
            line = key_node.start_mark.line + 1
            if key_node.value in first_lines:
                found.append((field, first_lines[key_node.value], line))
            else:
                first_lines[key_node.value] = line
            found += _duplicate_keys(value_node, field, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{where}[{_item_name(item) or index}]", seen_nodes)
    return found


def _item_name(node):
    """The `name:` of a list item given as a mapping (hosts are named by it), else None."""
    if isinstance(node, yaml.MappingNode):
        names = [value.value for key, value in node.value
                 if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode)]
        return names[-1] if names else None
    return None


def _suggest(key, allowed):
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _is_empty(value):
    """`key:` (YAML null) or `key: ""`: a key written without a value."""
    return value is None or value == ""


def _check_kind(kind, value):
    """Returns (value, problem or None), coercing where the YAML type is an obvious fit."""
    if value is None:
        return None, None
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "must be a whole number"
        return value, None
    if kind in ("map",):
        return (value, None) if isinstance(value, dict) else (None, "must be a mapping")
    if kind == "list":
        return (value, None) if isinstance(value, list) else (None, "must be a list")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None, "must be a string"
    value = str(value)
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return None, f"'{value}' is not an IP address"
    elif kind == "cidr":
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as error:
            return None, f"'{value}' is not a network in CIDR form ({error})"
    elif kind == "url":
        if not URL_RE.match(value):
            return None, f"'{value}' is not an http(s) URL"
        value = value.rstrip("/")
    elif kind == "version":
        match = VERSION_RE.match(value)
        if not match:
            return None, f"'{value}' is not a version like 1.2.3"
        value = ".".join(match.groups())
    elif kind == "path":
        value = os.path.expanduser(value)
    return value, None


def _read_knobs(raw, problems):
    allowed_sections = sections()
    top_level = {knob.path for knob in KNOBS if "." not in knob.path} | {"hosts", "remove"}
    for key, value in raw.items():
        if key in allowed_sections:
            if _is_empty(value):
                problems.append(Problem(key, "is empty: remove it to use the defaults of its keys"))
                continue
            if not isinstance(value, dict):
                problems.append(Problem(key, "must be a mapping"))
                continue
            for sub in value:
                if sub not in allowed_sections[key]:
                    problems.append(Problem(f"{key}.{sub}", "unknown key" + _suggest(sub, allowed_sections[key])))
        elif key not in top_level:
            problems.append(Problem(key, "unknown key" + _suggest(key, set(allowed_sections) | top_level)))

    settings = {section: {} for section in allowed_sections}
    for knob in KNOBS:
        if "." in knob.path:
            section, key = knob.path.split(".", 1)
            container = raw.get(section) if isinstance(raw.get(section), dict) else {}
        else:
            section, key, container = None, knob.path, raw
        value, error = container.get(key), None
        if _is_empty(value):
            if knob.required:
                problems.append(Problem(knob.path, "is required"))
            elif key in container and knob.default is not None:
                # `key:` and `key: ""` would otherwise quietly mean the default: say so instead
                problems.append(Problem(knob.path, f"is empty: remove the key to use the default "
                                        f"{yaml_text(knob.default)}"))
        else:
            value, error = _check_kind(knob.kind, value)
            if not error and knob.choices and value not in knob.choices:
                error = f"'{value}' is not one of: {', '.join(knob.choices)}"
            if error:
                problems.append(Problem(knob.path, error))
        if _is_empty(value) or error:
            # a wrong value is reported once; the other checks go on with the default
            value = knob.default.copy() if isinstance(knob.default, (dict, list)) else knob.default
        if section:
            settings[section][key] = value
        else:
            settings[key] = value
    return {
        key: SimpleNamespace(**value) if key in allowed_sections else value
        for key, value in settings.items()
    }


def _read_hosts(raw_hosts, ssh, problems):
    if raw_hosts is None:
        problems.append(Problem("hosts", "is required: list the machines of the cluster"))
        return []
    if not isinstance(raw_hosts, list):
        problems.append(Problem("hosts", "must be a list"))
        return []
    hosts = []
    for index, entry in enumerate(raw_hosts):
        where = f"hosts[{index}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, "must be a mapping with name, address and roles"))
            continue
        name = entry.get("name")
        if isinstance(name, str):
            where = f"hosts[{name}]"
        for key in entry:
            if key not in HOST_KEYS:
                problems.append(Problem(f"{where}.{key}", "unknown key" + _suggest(key, HOST_KEYS)))
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{where}.name", "is required"))
            name = None
        address, error = _check_kind("ip", entry.get("address"))
        if error:
            problems.append(Problem(f"{where}.address", error))
        elif address is None:
            problems.append(Problem(f"{where}.address", "is required"))
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles:
            problems.append(Problem(f"{where}.roles", f"must be a non-empty list of: {', '.join(ROLES)}"))
            roles = []
        for role in roles:
            if role not in ROLES:
                problems.append(Problem(f"{where}.roles", f"unknown role '{role}'" + _suggest(role, ROLES)))
        login = _read_host_login(entry.get("ssh", {}), f"{where}.ssh", problems)
        labels = entry.get("labels", {})
        if _is_empty(labels):
            problems.append(Problem(f"{where}.labels", "is empty: remove the key to use the default {}"))
            labels = {}
        elif not isinstance(labels, dict):
            problems.append(Problem(f"{where}.labels", "must be a mapping"))
            labels = {}
        hosts.append(Host(
            name=name,
            address=address,
            roles=tuple(role for role in roles if role in ROLES),
            ssh_user=login.get("user", ssh.user),
            ssh_key=login.get("key", ssh.key),
            ssh_port=login.get("port", ssh.port),
            labels={str(k): str(v) for k, v in labels.items()},
        ))
    return hosts


def _read_removals(raw_removals, ssh, problems):
    """`remove:`: the nodes to take out of the cluster, each named by its name and its address (a
    host no longer in `hosts`, so its roles are read from the cluster when the run starts)."""
    if raw_removals is None:
        return []
    if not isinstance(raw_removals, list):
        problems.append(Problem("remove", "must be a list of {name, address} of the nodes to take out"))
        return []
    removals = []
    for index, entry in enumerate(raw_removals):
        where = f"remove[{index}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, "must be a mapping with the name and the address of the node"))
            continue
        name = entry.get("name")
        if isinstance(name, str) and name:
            where = f"remove[{name}]"
        else:
            problems.append(Problem(f"{where}.name", "is required: the node's name, as it was in hosts"))
            name = None
        for key in entry:
            if key not in REMOVAL_KEYS:
                problems.append(Problem(f"{where}.{key}", "unknown key" + _suggest(key, REMOVAL_KEYS)))
        address, error = _check_kind("ip", entry.get("address"))
        if error:
            problems.append(Problem(f"{where}.address", error))
        elif address is None:
            problems.append(Problem(f"{where}.address", "is required: the node's address, as it was in hosts"))
        login = _read_host_login(entry.get("ssh", {}), f"{where}.ssh", problems)
        removals.append(Host(name=name, address=address, roles=(), ssh_user=login.get("user", ssh.user),
                             ssh_key=login.get("key", ssh.key), ssh_port=login.get("port", ssh.port)))
    return removals


def _read_host_login(host_ssh, where, problems):
    """A host's own `ssh:` settings, checked like the cluster's: {key: value} of those it gives."""
    if _is_empty(host_ssh):
        problems.append(Problem(where, "is empty: remove the key to use the cluster's ssh settings"))
        return {}
    if not isinstance(host_ssh, dict):
        problems.append(Problem(where, "must be a mapping"))
        return {}
    login = {}
    for key, value in host_ssh.items():
        if key not in HOST_SSH_KEYS:
            problems.append(Problem(f"{where}.{key}", "unknown key" + _suggest(key, HOST_SSH_KEYS)))
        elif _is_empty(value):
            problems.append(Problem(f"{where}.{key}", f"is empty: remove the key to use ssh.{key}"))
        else:
            kind = next(knob.kind for knob in KNOBS if knob.path == f"ssh.{key}")
            value, error = _check_kind(kind, value)
            if error:
                problems.append(Problem(f"{where}.{key}", error))
            else:
                login[key] = value
    return login


def load(path):
    """Reads a cluster file. Returns (Cluster or None, [Problem])."""
    path = Path(path)
    problems = []
    try:
        text = path.read_text()
    except OSError as error:
        return None, [Problem(str(path), f"cannot read the cluster file: {error.strerror}")]
    try:
        raw, duplicate_keys = _parse(text)
    except yaml.YAMLError as error:
        return None, [Problem(str(path), f"is not valid YAML: {error}")]
    if not isinstance(raw, dict):
        return None, [Problem(str(path), "must be a YAML mapping")]
    for where, first, second in duplicate_keys:
        lines = f"on line {first}" if first == second else f"(lines {first} and {second})"
        problems.append(Problem(where, f"is given twice {lines}: YAML would keep only the last one; remove the other"))
    settings = _read_knobs(raw, problems)
    hosts = _read_hosts(raw.get("hosts"), settings["ssh"], problems)
    if "remove" in raw and raw["remove"] is None:
        problems.append(Problem("remove", "is empty: remove the key when no node is to be taken out"))
    removals = _read_removals(raw.get("remove"), settings["ssh"], problems)
    return Cluster(source=path, hosts=hosts, settings=settings, removals=removals), problems
