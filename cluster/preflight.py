"""Preflight: every check of the cluster definition that needs no host, reported together.

`check(path)` returns the loaded Cluster and every problem found, each naming its field.
Nothing here connects anywhere.
"""

import ipaddress
import os
import re

from packaging.version import Version

from cluster import backup, downloads
from cluster.model import Problem, load

HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
CLUSTER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
LINUX_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DNS_NAME_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")

# Kubernetes minors this deploy writes configs for (kubeadm v1beta4; cgroup v1 still possible).
SUPPORTED_KUBERNETES = ("1.33", "1.34", "1.35", "1.36", "1.37")
SUPPORTED_ETCD = ("3.5", "3.6")
SUPPORTED_CALICO = ("3.29", "3.30", "3.31")
# containerd lines and the first patch each Kubernetes minor accepts (containerd's own matrix).
CONTAINERD_MINIMUM = {
    "1.33": {"1.7": "1.7.24", "2.0": "2.0.1", "2.1": "2.1.0", "2.2": "2.2.0", "2.3": "2.3.0"},
    "1.34": {"1.7": "1.7.24", "2.0": "2.0.1", "2.1": "2.1.0", "2.2": "2.2.0", "2.3": "2.3.0"},
    "1.35": {"1.7": "1.7.28", "2.1": "2.1.5", "2.2": "2.2.0", "2.3": "2.3.0"},
    "1.36": {"2.2": "2.2.0", "2.3": "2.3.0"},
    "1.37": {"2.2": "2.2.0", "2.3": "2.3.0"},
}


def minor(version):
    return ".".join(version.split(".")[:2])


def _networks(cluster):
    result = {}
    for key in ("node_cidr", "pod_cidr", "service_cidr"):
        value = getattr(cluster.network, key)
        if value:
            result[f"network.{key}"] = ipaddress.ip_network(value)
    return result


def check_hosts(cluster):
    problems = []
    seen_names, seen_addresses = {}, {}
    node_net = _networks(cluster).get("network.node_cidr")
    for host in cluster.hosts:
        where = f"hosts[{host.name}]"
        if host.name and not HOSTNAME_RE.match(host.name):
            problems.append(Problem(f"{where}.name", "must be a lower-case DNS label (a-z, 0-9, '-')"))
        if host.name in seen_names:
            problems.append(Problem(f"{where}.name", "is used by two hosts"))
        seen_names[host.name] = host
        if host.address:
            if host.address in seen_addresses:
                problems.append(Problem(f"{where}.address",
                                        f"{host.address} is also the address of {seen_addresses[host.address]}"))
            seen_addresses[host.address] = host.name
            if node_net and ipaddress.ip_address(host.address) not in node_net:
                problems.append(Problem(f"{where}.address", f"{host.address} is outside network.node_cidr {node_net}"))
        if "control_plane" in host.roles and "worker" in host.roles:
            problems.append(Problem(f"{where}.roles", "a control plane is not also given the worker role; "
                                    "set kubernetes.control_planes_schedulable to run workloads on it"))
        if len(set(host.roles)) != len(host.roles):
            problems.append(Problem(f"{where}.roles", "lists a role twice"))
        if not host.ssh_user:
            problems.append(Problem(f"{where}.ssh.user", "no SSH user: set ssh.user"))
        if not host.ssh_key:
            problems.append(Problem(f"{where}.ssh.key", "no SSH key: set ssh.key"))
        elif host.ssh_key != cluster.ssh.key and not os.path.isfile(host.ssh_key):
            problems.append(Problem(f"{where}.ssh.key", f"{host.ssh_key} does not exist"))
        if host.ssh_port is not None and not 1 <= host.ssh_port <= 65535:
            problems.append(Problem(f"{where}.ssh.port", "must be between 1 and 65535"))
    return problems


def check_groups(cluster):
    problems = []
    if not cluster.hosts:
        return [Problem("hosts", "lists no host")]
    if not cluster.control_planes:
        problems.append(Problem("hosts", "no host has the control_plane role"))
    etcd_hosts = cluster.etcd_hosts
    if cluster.etcd.topology == "external":
        if not etcd_hosts:
            problems.append(Problem("hosts", "no host has the etcd role (etcd.topology is external)"))
        elif len(etcd_hosts) % 2 == 0:
            problems.append(Problem("hosts", f"{len(etcd_hosts)} etcd hosts: use an odd number so a "
                                    "majority survives a failure"))
    elif cluster.etcd.topology == "stacked":
        planes = {host.name for host in cluster.control_planes}
        if etcd_hosts and {host.name for host in etcd_hosts} != planes:
            problems.append(Problem("hosts", "with stacked etcd the etcd role goes with every control "
                                    "plane and nowhere else (or leave etcd roles out)"))
        if planes and len(planes) % 2 == 0:
            problems.append(Problem("hosts", f"{len(planes)} control planes with stacked etcd: use an "
                                    "odd number"))
    mode = cluster.api.mode
    if mode == "keepalived_haproxy":
        if not cluster.lb_hosts:
            problems.append(Problem("api.mode", "keepalived_haproxy needs hosts with the lb role"))
        for host in cluster.lb_hosts:
            if "control_plane" in host.roles and cluster.api.port == 6443:
                problems.append(Problem("api.port", f"haproxy on control plane {host.name} cannot listen "
                                        "on 6443, the apiserver's port: choose another (e.g. 8443)"))
    elif cluster.lb_hosts:
        problems.append(Problem("api.mode", f"hosts with the lb role are only used by keepalived_haproxy, "
                                f"not {mode}"))
    return problems


def check_api(cluster):
    problems = []
    api, mode = cluster.api, cluster.api.mode
    node_net = _networks(cluster).get("network.node_cidr")
    if mode in ("keepalived_haproxy", "kube_vip"):
        if not api.vip:
            problems.append(Problem("api.vip", f"is required with api.mode {mode}"))
        else:
            vip = ipaddress.ip_address(api.vip)
            if node_net and vip not in node_net:
                problems.append(Problem("api.vip", f"{api.vip} is outside network.node_cidr {node_net}: "
                                        "the hosts could not hold it"))
            elif node_net and vip in (node_net.network_address, node_net.broadcast_address):
                problems.append(Problem("api.vip", f"{api.vip} is the network or broadcast address"))
            owner = next((h.name for h in cluster.hosts if h.address == api.vip), None)
            if owner:
                problems.append(Problem("api.vip", f"{api.vip} is the address of host {owner}"))
        if not INTERFACE_RE.match(api.interface or ""):
            problems.append(Problem("api.interface", "is not an interface name"))
        if mode == "kube_vip" and api.port != 6443:
            problems.append(Problem("api.port", "kube-vip serves the VIP on the apiserver's own port: use 6443"))
    elif mode == "external" and not api.external_address:
        problems.append(Problem("api.external_address", "is required with api.mode external"))
    if mode in ("external", "none") and api.vip:
        problems.append(Problem("api.vip", f"is not used with api.mode {mode}"))
    if mode == "none" and cluster.workers.api_access == "vip":
        problems.append(Problem("workers.api_access", "there is no VIP with api.mode none: use localhost_proxy"))
    if not 1 <= api.port <= 65535:
        problems.append(Problem("api.port", "must be between 1 and 65535"))
    if not 1 <= api.virtual_router_id <= 255:
        problems.append(Problem("api.virtual_router_id", "must be between 1 and 255"))
    if not DNS_NAME_RE.match(api.endpoint_name or ""):
        problems.append(Problem("api.endpoint_name", "is not a DNS name"))
    return problems


def check_networks(cluster):
    problems = []
    networks = _networks(cluster)
    names = list(networks)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if networks[first].overlaps(networks[second]):
                problems.append(Problem(second, f"{networks[second]} overlaps {first} {networks[first]}"))
    service = networks.get("network.service_cidr")
    if service and service.version == 4 and service.prefixlen < 12:
        problems.append(Problem("network.service_cidr", "is larger than the apiserver allows (/12 at most)"))
    pod = networks.get("network.pod_cidr")
    if pod and pod.version == 4 and pod.prefixlen > 24:
        problems.append(Problem("network.pod_cidr", "is smaller than one node's /24 block"))
    if not DNS_NAME_RE.match(cluster.network.cluster_domain or ""):
        problems.append(Problem("network.cluster_domain", "is not a DNS name"))
    return problems


def check_versions(cluster):
    problems = []
    kube = cluster.kubernetes.version
    if kube and minor(kube) not in SUPPORTED_KUBERNETES:
        problems.append(Problem("kubernetes.version", f"{kube} is not supported (supported: "
                                f"{', '.join(SUPPORTED_KUBERNETES)})"))
    etcd = cluster.etcd.version
    if etcd and minor(etcd) not in SUPPORTED_ETCD:
        problems.append(Problem("etcd.version", f"{etcd} is not supported (supported: {', '.join(SUPPORTED_ETCD)})"))
    if kube and etcd and Version(kube) >= Version("1.34") and minor(etcd) == "3.5" \
            and cluster.etcd.topology == "external":
        if Version(etcd) < Version("3.5.21"):
            problems.append(Problem("etcd.version", f"Kubernetes {kube} needs etcd 3.5.21+ or 3.6"))
    containerd = cluster.containerd.version
    if kube and containerd and minor(kube) in CONTAINERD_MINIMUM:
        minimum = CONTAINERD_MINIMUM[minor(kube)].get(minor(containerd))
        if minimum is None or Version(containerd) < Version(minimum):
            accepted = ", ".join(f"{v}+" for v in CONTAINERD_MINIMUM[minor(kube)].values())
            problems.append(Problem("containerd.version", f"containerd {containerd} is not supported by "
                                    f"Kubernetes {minor(kube)} (accepted: {accepted})"))
    calico = cluster.calico.version
    if calico and minor(calico) not in SUPPORTED_CALICO:
        problems.append(Problem("calico.version", f"{calico} is not supported (supported: {', '.join(SUPPORTED_CALICO)})"))
    return problems


def check_settings(cluster):
    problems = []
    if cluster.name and not CLUSTER_NAME_RE.match(cluster.name):
        problems.append(Problem("name", "must be lower-case letters, digits and '-' (it names a directory)"))
    if cluster.ssh.key and not os.path.isfile(cluster.ssh.key):
        problems.append(Problem("ssh.key", f"{cluster.ssh.key} does not exist{_lab_hint(cluster)}"))
    if cluster.ssh.known_hosts_file and not os.path.isfile(cluster.ssh.known_hosts_file):
        problems.append(Problem("ssh.known_hosts_file",
                                f"{cluster.ssh.known_hosts_file} does not exist{_lab_hint(cluster)}"))
    if not 1 <= cluster.ssh.port <= 65535:
        problems.append(Problem("ssh.port", "must be between 1 and 65535"))
    user = cluster.kubectl_user
    if user.name and not LINUX_USER_RE.match(user.name):
        problems.append(Problem("kubectl_user.name", f"'{user.name}' is not a valid Linux user name"))
    if user.group == "system:masters":
        problems.append(Problem("kubectl_user.group", "system:masters cannot be revoked by RBAC: use "
                                "another group and bind a role to it"))
    mtu = cluster.calico.mtu
    if mtu and not 1000 <= mtu <= 9000:
        problems.append(Problem("calico.mtu", "must be 0 (detect) or between 1000 and 9000"))
    checksums = cluster.offline.checksums_file
    if checksums and not os.path.isfile(checksums):
        problems.append(Problem("offline.checksums_file", f"{checksums} does not exist{_lab_hint(cluster)}"))
    for key, value in cluster.kubernetes.node_labels.items():
        if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$", str(key)):
            problems.append(Problem(f"kubernetes.node_labels.{key}", "is not a valid label key"))
    for registry, mirrors in cluster.containerd.registry_mirrors.items():
        if not isinstance(mirrors, list) or not all(isinstance(m, str) and m.startswith(("http://", "https://"))
                                                    for m in mirrors):
            problems.append(Problem(f"containerd.registry_mirrors.{registry}", "must be a list of http(s) URLs"))
    return problems


def _lab_hint(cluster):
    """The lab makes its key, known_hosts and artifacts itself: say how."""
    return " (the lab makes it: run `make lab`)" if cluster.lab else ""


def check_downloads(cluster):
    """Every file the deploy downloads must have a pinned checksum (each host's own architecture
    is checked again once its facts are read)."""
    problems = []
    try:
        table = downloads.checksum_table(cluster)
    except downloads.ChecksumFileError as error:
        return [Problem("offline.checksums_file", str(error))]
    for item in downloads.items(cluster):
        if not table.get(item.component, {}).get(item.version):
            problems.append(Problem(item.knob, f"no sha256 is known for {item.component} {item.version}: "
                                    "add it to offline.checksums_file"))
    return problems


CHECKS = (check_settings, check_hosts, check_groups, check_api, check_networks, check_versions, check_downloads,
          backup.check_settings)


def check(path):
    """Loads the cluster file and runs every check. Returns (Cluster or None, [Problem])."""
    cluster, problems = load(path)
    if cluster is None:
        return None, problems
    for run_check in CHECKS:
        problems += run_check(cluster)
    return cluster, problems
