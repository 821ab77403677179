"""Facts about a node's Kubernetes files and binaries, and what the API says about the cluster.

The API facts run kubectl on the host with the kubeconfig given (read with sudo) and answer
None when that file is missing or the API does not answer in time. KubeNodeState reads the
files kubeadm itself puts in its fixed places.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from datetime import datetime, timezone

import yaml
from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import (
    MARKER,
    UNREACHABLE,
    dig,
    if_api_answers,
    if_readable,
    kubectl,
    load_json,
    sections,
)

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

_VERSION_RE = re.compile(r"\bv\d+\.\d+\.\d+[^\s\",]*")


class KubeNodeState(FactBase[dict]):
    """
    Which of kubeadm's files exist on this node, and so what it has become.

    Reads the presence (not the contents) of /etc/kubernetes/{kubelet,admin,super-admin}.conf,
    /etc/kubernetes/manifests/kube-apiserver.yaml and /var/lib/kubelet/config.yaml.
    ``role`` is None until the node has joined (no kubelet.conf), "control_plane" when the
    apiserver manifest exists, else "worker".

    .. code:: python

        {
            "kubelet_conf": True,
            "admin_conf": True,
            "super_admin_conf": False,
            "control_plane_manifests": True,
            "kubelet_config": True,
            "role": "control_plane",
        }
    """

    FILES = {
        "/etc/kubernetes/kubelet.conf": "kubelet_conf",
        "/etc/kubernetes/admin.conf": "admin_conf",
        "/etc/kubernetes/super-admin.conf": "super_admin_conf",
        "/etc/kubernetes/manifests/kube-apiserver.yaml": "control_plane_manifests",
        "/var/lib/kubelet/config.yaml": "kubelet_config",
    }

    @staticmethod
    def default() -> dict:
        state: dict = {key: False for key in KubeNodeState.FILES.values()}
        state["role"] = None
        return state

    @override
    def command(self) -> str:
        paths = " ".join(self.FILES)
        return f'for f in {paths}; do if [ -f "$f" ]; then echo "$f"; fi; done'

    @override
    def process(self, output: list[str]) -> dict:
        state = self.default()
        for line in output:
            key = self.FILES.get(line.strip())
            if key:
                state[key] = True
        if state["kubelet_conf"]:
            state["role"] = "control_plane" if state["control_plane_manifests"] else "worker"
        return state


class KubeBinaryVersions(FactBase[dict]):
    """
    The versions of kubeadm, kubelet and kubectl in ``bin_dir``, None for a missing binary (or
    one that does not say its version).

    .. code:: python

        {"kubeadm": "v1.35.8", "kubelet": "v1.35.8", "kubectl": None}
    """

    BINARIES = ("kubeadm", "kubelet", "kubectl")

    @staticmethod
    def default() -> dict:
        return {name: None for name in KubeBinaryVersions.BINARIES}

    @override
    def command(self, bin_dir: str) -> str:
        return (
            "for b in kubeadm kubelet kubectl; do"
            f' p={shlex.quote(bin_dir)}/$b; if [ -x "$p" ]; then'
            f' echo "{MARKER}$b";'
            ' case $b in'
            ' kubeadm) "$p" version -o short ;;'
            ' kubelet) "$p" --version ;;'
            ' kubectl) "$p" version --client -o json ;;'
            " esac 2>/dev/null || true;"
            " fi; done"
        )

    @override
    def process(self, output: list[str]) -> dict:
        versions = self.default()
        for name, (_, body) in sections(output).items():
            if name not in versions:
                continue
            if name == "kubectl":
                git_version = dig(load_json(body), "clientVersion", "gitVersion")
                if isinstance(git_version, str) and _VERSION_RE.fullmatch(git_version):
                    versions[name] = git_version
                    continue
            match = _VERSION_RE.search("\n".join(body))
            versions[name] = match.group(0) if match else None
        return versions


class ClusterNodes(FactBase[dict | None]):
    """
    The cluster's nodes as the API lists them (``kubectl get --raw /api/v1/nodes``: one
    request, no discovery, so an unreachable API costs one timeout).

    None when the kubeconfig is missing or the API cannot be read. ``internal_ip`` is None
    for a node that reports no InternalIP address.

    .. code:: python

        {
            "cp1": {
                "ready": True,
                "control_plane": True,
                "taints": [
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                ],
                "labels": {"kubernetes.io/hostname": "cp1", ...},
                "kubelet_version": "v1.35.8",
                "internal_ip": "10.123.0.21",
            },
        }
    """

    @override
    def requires_command(self, kubeconfig: str) -> str:
        return "kubectl"

    @override
    def command(self, kubeconfig: str) -> str:
        get = kubectl(kubeconfig, "get --raw=/api/v1/nodes")
        return if_readable(kubeconfig, f"{get} 2>/dev/null || echo '{UNREACHABLE}'")

    @override
    def process(self, output: list[str]) -> dict | None:
        items = dig(load_json(output), "items")
        if not isinstance(items, list):
            return None
        nodes = {}
        for item in items:
            name = dig(item, "metadata", "name")
            if not isinstance(name, str):
                continue
            labels = dig(item, "metadata", "labels", default={}) or {}
            conditions = dig(item, "status", "conditions", default=[]) or []
            addresses = dig(item, "status", "addresses", default=[]) or []
            taints = dig(item, "spec", "taints", default=[]) or []
            nodes[name] = {
                "ready": any(
                    dig(c, "type") == "Ready" and dig(c, "status") == "True" for c in conditions
                ),
                "control_plane": CONTROL_PLANE_LABEL in labels,
                "taints": [
                    {"key": dig(t, "key"), "effect": dig(t, "effect")}
                    for t in taints
                    if isinstance(t, dict)
                ],
                "labels": labels,
                "kubelet_version": dig(item, "status", "nodeInfo", "kubeletVersion"),
                "internal_ip": next(
                    (dig(a, "address") for a in addresses if dig(a, "type") == "InternalIP"),
                    None,
                ),
            }
        return nodes


def _b64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


class BootstrapTokenIds(FactBase[list | None]):
    """
    The ids of the bootstrap tokens that exist and have not expired, sorted.

    Reads the ``bootstrap.kubernetes.io/token`` Secrets in kube-system, printing only each
    one's ``token-id`` and ``expiration`` (still base64) and the host's UTC time to compare
    with; the token secret is never printed. A token without expiration never expires; one
    whose expiration cannot be read counts as expired (as the apiserver treats it). None when
    the kubeconfig is missing or the API cannot be read.

    .. code:: python

        ["abcdef", "x7k2pq"]
    """

    TEMPLATE = (
        "{{range .items}}{{with .data}}token "
        '{{with index . "token-id"}}{{.}}{{else}}-{{end}} '
        '{{with index . "expiration"}}{{.}}{{else}}-{{end}}'
        '{{"\\n"}}{{end}}{{end}}'
    )

    @override
    def requires_command(self, kubeconfig: str) -> str:
        return "kubectl"

    @override
    def command(self, kubeconfig: str) -> str:
        get = (
            "-n kube-system get secrets --field-selector type=bootstrap.kubernetes.io/token"
            f" -o go-template={shlex.quote(self.TEMPLATE)}"
        )
        return if_api_answers(
            kubeconfig,
            f'echo "{MARKER}now $(date -u +%Y-%m-%dT%H:%M:%SZ)"; '
            f"{kubectl(kubeconfig, get)} 2>/dev/null || echo '{UNREACHABLE}'",
        )

    @override
    def process(self, output: list[str]) -> list | None:
        if UNREACHABLE in output:
            return None
        now = _parse_time(sections(output).get("now", ("", []))[0])
        ids = set()
        for line in output:
            fields = line.split()
            if len(fields) != 3 or fields[0] != "token" or fields[1] == "-":
                continue
            token_id = _b64(fields[1])
            if not token_id or not re.fullmatch(r"[a-z0-9]{6}", token_id):
                continue
            if fields[2] != "-":
                expiration = _b64(fields[2])
                expires = _parse_time(expiration) if expiration else None
                if expires is None or (now is not None and expires <= now):
                    continue
            ids.add(token_id)
        return sorted(ids)


_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def _openssl_date(value: str) -> str | None:
    """``Nov 20 03:12:00 2035 GMT`` (openssl's notAfter) as ``2035-11-20T03:12:00Z``."""
    fields = value.split()
    if len(fields) != 5 or fields[0] not in _MONTHS or fields[4] != "GMT":
        return None
    try:
        when = datetime.strptime(
            f"{fields[3]}-{_MONTHS[fields[0]]}-{fields[1]} {fields[2]}", "%Y-%m-%d %H:%M:%S"
        )
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shell_words(paths: list[str]) -> str:
    """Paths for a shell ``for`` loop: globs stay unquoted so the shell expands them."""
    return " ".join(p if re.fullmatch(r"[A-Za-z0-9_./*-]+", p) else shlex.quote(p) for p in paths)


class CertificateExpiry(FactBase[dict]):
    """
    When each certificate expires (``openssl x509 -enddate``), as ``{path: "...Z"}``.

    + paths: files or shell globs (e.g. every ``*.crt`` of kubeadm's PKI), ``[]`` none. Files that
      are missing or not certificates are left out; ``{}`` when none is found. Only certificates
      are read, never keys (a PEM file holding both, like the kubelet's client certificate, is
      read by ``openssl x509``, which prints only the date asked for).
    + kubeconfigs: kubeconfig files whose embedded client certificate (``client-certificate-data``)
      is read the same way, keyed by the kubeconfig's path; only that line is read, never
      ``client-key-data``. A kubeconfig that points at a certificate file is left out.

    .. code:: python

        {"/etc/kubernetes/pki/apiserver.crt": "2027-11-22T03:12:00Z",
         "/etc/kubernetes/admin.conf": "2027-11-22T03:12:01Z"}
    """

    default = dict

    @override
    def requires_command(self, paths: list[str], kubeconfigs: list[str] = ()) -> str:
        return "openssl"

    @override
    def command(self, paths: list[str], kubeconfigs: list[str] = ()) -> str:
        if isinstance(paths, str):
            paths = [paths]
        commands = []
        if paths:
            commands.append(
                f'for f in {_shell_words(list(paths))}; do if [ -f "$f" ]; then'
                ' printf "%s " "$f"; openssl x509 -enddate -noout -in "$f" 2>/dev/null || echo;'
                " fi; done"
            )
        if kubeconfigs:
            commands.append(
                f'for f in {_shell_words(list(kubeconfigs))}; do if [ -f "$f" ]; then printf "%s " "$f";'
                " sed -n 's/^[[:space:]]*client-certificate-data:[[:space:]]*//p' \"$f\" | head -n 1"
                " | openssl enc -d -a -A 2>/dev/null | openssl x509 -enddate -noout 2>/dev/null || echo;"
                " fi; done"
            )
        return "; ".join(commands) or "true"

    @override
    def process(self, output: list[str]) -> dict:
        expiry = {}
        for line in output:
            path, _, rest = line.partition(" notAfter=")
            when = _openssl_date(rest) if rest else None
            if path and when:
                expiry[path.strip()] = when
        return expiry


def _ready_controllers(deployment: dict | None) -> bool:
    if not isinstance(deployment, dict):
        return False
    wanted = dig(deployment, "spec", "replicas", default=1)
    ready = dig(deployment, "status", "readyReplicas", default=0)
    return isinstance(wanted, int) and isinstance(ready, int) and 0 < wanted <= ready


class CalicoState(FactBase[dict | None]):
    """
    Calico as installed from its manifest: the calico-node DaemonSet and the
    calico-kube-controllers Deployment in ``namespace`` (kube-system), and every IPPool.

    ``installed`` means the calico-node DaemonSet exists. ``ip_pools`` is ``[]`` when the
    IPPool CRD does not exist; a pool's unset ``vxlanMode``/``ipipMode`` is "Never" (Calico's
    default). None when the kubeconfig is missing or the API cannot be read.

    .. code:: python

        {
            "installed": True,
            "node_desired": 5,
            "node_ready": 5,
            "controllers_ready": True,
            "ip_pools": [
                {"name": "default-ipv4-ippool", "cidr": "10.244.0.0/16",
                 "vxlan_mode": "Always", "ipip_mode": "Never"},
            ],
        }
    """

    @override
    def requires_command(self, kubeconfig: str, namespace: str = "kube-system") -> str:
        return "kubectl"

    @override
    def command(self, kubeconfig: str, namespace: str = "kube-system") -> str:
        ns = shlex.quote(namespace)
        node = kubectl(kubeconfig, f"-n {ns} get daemonset calico-node -o json --ignore-not-found")
        ctrl = kubectl(
            kubeconfig, f"-n {ns} get deployment calico-kube-controllers -o json --ignore-not-found"
        )
        pools = kubectl(kubeconfig, "get ippools.crd.projectcalico.org -o json")
        # A failed get of the DaemonSet or Deployment means the API failed (not-found prints
        # nothing); a failed get of the pools means the CRD does not exist (yet).
        return if_api_answers(
            kubeconfig,
            f"echo '{MARKER}node'; {node} 2>/dev/null || echo '{UNREACHABLE}'; "
            f"echo '{MARKER}controllers'; {ctrl} 2>/dev/null || echo '{UNREACHABLE}'; "
            f"echo '{MARKER}pools'; {pools} 2>/dev/null || true",
        )

    @override
    def process(self, output: list[str]) -> dict | None:
        if UNREACHABLE in output:
            return None
        parts = sections(output)
        if "node" not in parts or "controllers" not in parts:
            return None
        node_lines, ctrl_lines = parts["node"][1], parts["controllers"][1]
        node, ctrl = load_json(node_lines), load_json(ctrl_lines)
        for lines, obj in ((node_lines, node), (ctrl_lines, ctrl)):
            if lines and not isinstance(obj, dict):  # printed something, but not an object
                return None
        pools = []
        for item in dig(load_json(parts.get("pools", ("", []))[1]), "items", default=[]) or []:
            name = dig(item, "metadata", "name")
            if not isinstance(name, str):
                continue
            pools.append(
                {
                    "name": name,
                    "cidr": dig(item, "spec", "cidr"),
                    "vxlan_mode": dig(item, "spec", "vxlanMode") or "Never",
                    "ipip_mode": dig(item, "spec", "ipipMode") or "Never",
                }
            )
        return {
            "installed": node is not None,
            "node_desired": dig(node, "status", "desiredNumberScheduled", default=0),
            "node_ready": dig(node, "status", "numberReady", default=0),
            "controllers_ready": _ready_controllers(ctrl),
            "ip_pools": sorted(pools, key=lambda pool: pool["name"]),
        }


class ClusterRoleBinding(FactBase[dict | None]):
    """
    The ClusterRoleBinding named ``binding``: its role and subjects (kind and name), or None
    when it does not exist (or the kubeconfig is missing or the API cannot be read).

    .. code:: python

        {"role": "cluster-admin", "subjects": [{"kind": "Group", "name": "kubeadm:cluster-admins"}]}
    """

    @override
    def requires_command(self, binding: str, kubeconfig: str) -> str:
        return "kubectl"

    @override
    def command(self, binding: str, kubeconfig: str) -> str:
        # The argument cannot be called ``name``: pyinfra reserves it for operations.
        get = kubectl(
            kubeconfig, f"get clusterrolebinding {shlex.quote(binding)} -o json --ignore-not-found"
        )
        return if_api_answers(kubeconfig, f"{get} 2>/dev/null || echo '{UNREACHABLE}'")

    @override
    def process(self, output: list[str]) -> dict | None:
        binding = load_json(output)
        role = dig(binding, "roleRef", "name")
        if not isinstance(role, str):
            return None
        return {
            "role": role,
            "subjects": [
                {"kind": dig(s, "kind"), "name": dig(s, "name")}
                for s in dig(binding, "subjects", default=[]) or []
                if isinstance(s, dict)
            ],
        }


class KubeadmClusterConfiguration(FactBase[dict | None]):
    """
    The ClusterConfiguration kubeadm stored in the cluster (ConfigMap kube-system/kubeadm-config,
    key ClusterConfiguration), parsed: what later joins and `kubeadm upgrade` read. None when the
    kubeconfig is missing, the API cannot be read or the ConfigMap does not exist. It holds no
    secret.

    .. code:: python

        {"kind": "ClusterConfiguration", "certificateValidityPeriod": "8760h0m0s",
         "etcd": {"external": {"endpoints": ["https://10.123.0.21:2379"], ...}}, ...}
    """

    @override
    def requires_command(self, kubeconfig: str) -> str:
        return "kubectl"

    @override
    def command(self, kubeconfig: str) -> str:
        get = kubectl(kubeconfig, "-n kube-system get configmap kubeadm-config --ignore-not-found"
                      f" -o {shlex.quote('jsonpath={.data.ClusterConfiguration}')}")
        return if_api_answers(kubeconfig, f"{get} 2>/dev/null || echo '{UNREACHABLE}'")

    @override
    def process(self, output: list[str]) -> dict | None:
        if UNREACHABLE in output:
            return None
        try:
            config = yaml.safe_load("\n".join(output))
        except yaml.YAMLError:
            return None
        return config if isinstance(config, dict) and config.get("kind") == "ClusterConfiguration" else None


class ApiserverEtcdServers(FactBase[list | None]):
    """
    The etcd client URLs this control plane's apiserver is started with: the ``--etcd-servers``
    flag of its static pod manifest (``manifest``), as a list. None when there is no manifest
    (not a control plane yet) or it has no such flag.

    .. code:: python

        ["https://10.123.0.21:2379", "https://10.123.0.22:2379"]
    """

    @override
    def command(self, manifest: str) -> str:
        quoted = shlex.quote(manifest)
        return if_readable(manifest, f"grep -o -E -- '--etcd-servers=[^\"[:space:]]+' {quoted} || true")

    @override
    def process(self, output: list[str]) -> list | None:
        for line in output:
            _, found, urls = line.strip().partition("--etcd-servers=")
            if found and urls:
                return [url for url in urls.split(",") if url]
        return None


class StaticPodStarts(FactBase[dict]):
    """
    When the control plane's static pods started and when the files they read last changed:
    ``started`` has, for each running container of kube-system, by its name, its creation time
    (``crictl ps``), ``modified`` the change time of each of ``paths`` that exists (``stat``),
    both in seconds since the epoch. A container not running is left out.

    .. code:: python

        {"started": {"kube-apiserver": 1763900000.12},
         "modified": {"/etc/kubernetes/pki/apiserver.crt": 1763800000}}
    """

    @staticmethod
    def default() -> dict:
        return {"started": {}, "modified": {}}

    @override
    def requires_command(self, paths: list[str]) -> str:
        return "crictl"

    @override
    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return (
            f"echo '{MARKER}containers'; crictl ps --state running --label io.kubernetes.pod.namespace=kube-system"
            f" -o json 2>/dev/null || true; echo '{MARKER}modified'; stat -c '%Y %n' {quoted} 2>/dev/null || true"
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        found = self.default()
        containers = dig(load_json(parts.get("containers", ("", []))[1]), "containers", default=[]) or []
        for container in containers if isinstance(containers, list) else []:
            name, created = dig(container, "metadata", "name"), dig(container, "createdAt")
            try:
                started = int(created) / 1e9  # nanoseconds, as a string
            except (TypeError, ValueError):
                continue
            if isinstance(name, str):
                found["started"][name] = max(started, found["started"].get(name, 0))
        for line in parts.get("modified", ("", []))[1]:
            when, _, path = line.strip().partition(" ")
            if when.isdigit() and path:
                found["modified"][path] = int(when)
        return found
