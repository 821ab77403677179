"""Validation of the cluster file: every check of the cluster definition that needs no host,
reported together, before any host is touched.

`validate(path)` returns the loaded Cluster and every problem found, each naming its field: any
one stops the run. `warnings_for(cluster)` says what works but is not highly available, or is
probably not what was meant: printed, and the run goes on. Nothing here connects anywhere.
"""

import ipaddress
import os
import re

from packaging.version import Version

from cluster import backup, downloads, paths
from cluster.model import Problem, load
from cluster.system import is_ip
from cluster.secrets import CA_DAYS

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


# What else listens on a host, by what the host runs: Kubernetes' and Calico's default ports and
# kubeha's own (cluster/paths.py). A port the cluster file sets must not take one of them on the
# same host.
KUBELET_HOST_PORTS = {paths.CALICO_BGP_PORT: "Calico's BGP", paths.CALICO_TYPHA_PORT: "Calico's Typha",
                      paths.CALICO_FELIX_HEALTH_PORT: "Calico Felix's health check",
                      paths.KUBELET_HEALTHZ_PORT: "the kubelet's health check",
                      paths.KUBE_PROXY_METRICS_PORT: "kube-proxy's metrics", paths.KUBELET_PORT: "the kubelet",
                      paths.KUBE_PROXY_HEALTHZ_PORT: "kube-proxy's health check"}
CONTROL_PLANE_PORTS = {paths.APISERVER_PORT: "the apiserver", paths.CONTROLLER_MANAGER_PORT: "the controller-manager",
                       paths.SCHEDULER_PORT: "the scheduler"}
ETCD_PORTS = {paths.ETCD_CLIENT_PORT: "etcd (clients)", paths.ETCD_PEER_PORT: "etcd (peers)",
              paths.ETCD_METRICS_PORT: "etcd's metrics"}
LB_PORTS = {paths.HAPROXY_STATS_PORT: "haproxy's stats page"}

# Accounts that a Debian/Ubuntu or RHEL-like system, the packages kubeha installs (chrony,
# haproxy, nginx, keepalived) or kubeha itself (etcd) already have; names beginning with
# "systemd-" or "_" are system accounts by convention. The kubectl user is made with a login
# shell and a home holding its kubeconfig: one of these must not become that.
SYSTEM_ACCOUNTS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "messagebus", "sshd", "polkitd", "tss",
    "adm", "halt", "shutdown", "operator", "ftp", "dbus", "chrony", "haproxy", "nginx", "etcd",
})


def minor(version):
    return ".".join(version.split(".")[:2])


def _networks(cluster):
    result = {}
    for key in ("node_cidr", "pod_cidr", "service_cidr"):
        value = getattr(cluster.network, key)
        if value:
            result[f"network.{key}"] = ipaddress.ip_network(value)
    return result


def _placement_problem(address, node_net):
    """Why `address` cannot be a host's or the VIP's address in the node network, or None."""
    address = ipaddress.ip_address(address)
    if address.version != node_net.version:
        return f"{address} is IPv{address.version}, network.node_cidr {node_net} is IPv{node_net.version}"
    if address not in node_net:
        return f"{address} is outside network.node_cidr {node_net}"
    # a /31 or /32 has no network or broadcast address (RFC 3021)
    if node_net.num_addresses > 2 and address in (node_net.network_address, node_net.broadcast_address):
        return f"{address} is the network or broadcast address of network.node_cidr {node_net}, not a host's"
    return None


def _is_dns_name(value):
    """A lower-case DNS name whose last label is not all digits (so a mistyped IP address, like
    10.0.0.300, is not taken for a name)."""
    return bool(DNS_NAME_RE.match(value)) and not value.rsplit(".", 1)[-1].isdigit()


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
            placement = node_net and _placement_problem(host.address, node_net)
            if placement:
                problems.append(Problem(f"{where}.address", placement))
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
                                    "majority survives a failure" + _replacement_hint(cluster)))
    elif cluster.etcd.topology == "stacked":
        planes = {host.name for host in cluster.control_planes}
        if etcd_hosts and {host.name for host in etcd_hosts} != planes:
            problems.append(Problem("hosts", "with stacked etcd the etcd role goes with every control "
                                    "plane and nowhere else (or leave etcd roles out)"))
        if planes and len(planes) % 2 == 0:
            problems.append(Problem("hosts", f"{len(planes)} control planes with stacked etcd: use an "
                                    "odd number" + _replacement_hint(cluster)))
    mode = cluster.api.mode
    if mode == "keepalived_haproxy":
        if not cluster.lb_hosts:
            problems.append(Problem("api.mode", "keepalived_haproxy needs hosts with the lb role"))
    elif cluster.lb_hosts:
        problems.append(Problem("api.mode", f"hosts with the lb role are only used by keepalived_haproxy, "
                                f"not {mode}"))
    return problems


def _replacement_hint(cluster):
    """What an even etcd count means when nodes are being removed."""
    if not cluster.removals:
        return ""
    names = ", ".join(h.name for h in cluster.removals)
    return (f"; if removing {names} takes an etcd member away, add its replacement to hosts in the same "
            "run (or remove one more)")


def check_removals(cluster):
    """`remove:` names each node by name and address, both of a host that is no longer in `hosts`:
    a typo then names no node at all, and the run finds nothing to remove (see cluster/removal.py
    for what is checked against the cluster when the run starts)."""
    problems = []
    node_net = _networks(cluster).get("network.node_cidr")
    kept = {h.address: h.name for h in cluster.hosts}
    seen_names, seen_addresses = set(), set()
    for entry in cluster.removals:
        where = f"remove[{entry.name}]"
        if entry.name:
            if not HOSTNAME_RE.match(entry.name):
                problems.append(Problem(f"{where}.name", "must be a lower-case DNS label (a-z, 0-9, '-')"))
            if cluster.host(entry.name):
                problems.append(Problem(f"{where}.name", f"{entry.name} is still in hosts: a node is removed by "
                                        "taking it out of hosts and naming it here; keep it in one of the two"))
            if entry.name in seen_names:
                problems.append(Problem(f"{where}.name", "is listed twice"))
            seen_names.add(entry.name)
        if entry.address:
            if entry.address in kept and kept[entry.address] != entry.name:
                problems.append(Problem(f"{where}.address", f"{entry.address} is the address of host "
                                        f"{kept[entry.address]}, which the cluster keeps"))
            if entry.address == cluster.api.vip:
                problems.append(Problem(f"{where}.address", f"{entry.address} is the API's VIP, not a node's"))
            placement = node_net and _placement_problem(entry.address, node_net)
            if placement:
                problems.append(Problem(f"{where}.address", placement))
            if entry.address in seen_addresses:
                problems.append(Problem(f"{where}.address", f"{entry.address} is listed twice"))
            seen_addresses.add(entry.address)
    return problems


def check_certificates(cluster):
    problems = []
    certificates = cluster.certificates
    if certificates.renew_before < 1:
        problems.append(Problem("certificates.renew_before", "must be at least 1 (days before expiry)"))
    ca_hours = CA_DAYS * 24
    if not 1 <= certificates.validity_hours <= ca_hours:
        problems.append(Problem("certificates.validity_hours", f"must be between 1 and {ca_hours} (the CAs' own "
                                "lifetime: a certificate must not outlive the CA that signs it)"))
    return problems


def check_api(cluster):
    problems = []
    api, mode = cluster.api, cluster.api.mode
    node_net = _networks(cluster).get("network.node_cidr")
    if mode in ("keepalived_haproxy", "kube_vip"):
        if not api.vip:
            problems.append(Problem("api.vip", f"is required with api.mode {mode}"))
        else:
            placement = node_net and _placement_problem(api.vip, node_net)
            if placement:
                problems.append(Problem("api.vip", placement))
            owner = next((h.name for h in cluster.hosts if h.address == api.vip), None)
            if owner:
                problems.append(Problem("api.vip", f"{api.vip} is the address of host {owner}"))
        if not INTERFACE_RE.match(api.interface or ""):
            problems.append(Problem("api.interface", "is not an interface name"))
    elif mode == "external" and not api.external_address:
        problems.append(Problem("api.external_address", "is required with api.mode external"))
    if mode in ("external", "none") and api.vip:
        problems.append(Problem("api.vip", f"is not used with api.mode {mode}"))
    if api.external_address and mode != "external":
        problems.append(Problem("api.external_address", f"is not used with api.mode {mode}"))
    elif api.external_address and not (is_ip(api.external_address) or _is_dns_name(api.external_address)):
        problems.append(Problem("api.external_address", f"'{api.external_address}' is neither an IP address "
                                "nor a DNS name"))
    reaches_apiserver_directly = {
        "kube_vip": "kube-vip serves the VIP on the apiserver's own port",
        "none": "with api.mode none the clients reach the first control plane's apiserver itself",
    }
    if mode in reaches_apiserver_directly and api.port != paths.APISERVER_PORT:
        problems.append(Problem("api.port", f"{reaches_apiserver_directly[mode]}: use {paths.APISERVER_PORT}"))
    if mode == "none" and cluster.workers.api_access == "vip":
        problems.append(Problem("workers.api_access", "there is no VIP with api.mode none: use localhost_proxy"))
    if not 1 <= api.port <= 65535:
        problems.append(Problem("api.port", "must be between 1 and 65535"))
    if not 1 <= api.virtual_router_id <= 255:
        problems.append(Problem("api.virtual_router_id", "must be between 1 and 255"))
    name = api.endpoint_name
    if not _is_dns_name(name):
        problems.append(Problem("api.endpoint_name", "is not a DNS name"))
    elif name == "localhost" or name.endswith(".localhost"):
        problems.append(Problem("api.endpoint_name", f"{name} always means the host itself (RFC 6761), not "
                                "the API's address: choose another name"))
    elif cluster.host(name):
        problems.append(Problem("api.endpoint_name", f"is the name of host {name}: each host's /etc/hosts "
                                "would give it two addresses; choose another name"))
    for index, san in enumerate(api.extra_sans):
        if not isinstance(san, str):
            problems.append(Problem(f"api.extra_sans[{index}]", "must be a string: an IP address or a DNS name"))
        elif not (is_ip(san) or _is_dns_name(san.removeprefix("*."))):
            problems.append(Problem(f"api.extra_sans[{index}]", f"'{san}' is neither an IP address nor a DNS "
                                    "name (a leading *. is allowed)"))
    return problems


def check_networks(cluster):
    problems = []
    networks = _networks(cluster)
    for key, network in networks.items():
        # Calico's pool and its node address detection, IP forwarding and the VIP are set up for IPv4
        if network.version != 4:
            problems.append(Problem(key, f"{network} is IPv{network.version}: kubeha builds IPv4 clusters only "
                                    "(Calico's IPv4 pool, IPv4 forwarding); use an IPv4 network"))
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
    if not _is_dns_name(cluster.network.cluster_domain):
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
    if not LINUX_USER_RE.match(user.name):
        problems.append(Problem("kubectl_user.name", f"'{user.name}' is not a valid Linux user name"))
    elif user.name in SYSTEM_ACCOUNTS or user.name.startswith(("systemd-", "_")):
        problems.append(Problem("kubectl_user.name", f"'{user.name}' is a system account: the deploy would give "
                                "it a login shell and a kubeconfig; choose a user of its own (e.g. kubeops)"))
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


def _listeners(cluster, host):
    """(port, what listens on it, the knob that sets it or None) for everything on this host."""
    ssh_field = "ssh.port" if host.ssh_port == cluster.ssh.port else f"hosts[{host.name}].ssh.port"
    fixed = {}
    if "control_plane" in host.roles or "worker" in host.roles:
        fixed |= KUBELET_HOST_PORTS
    if "control_plane" in host.roles:
        fixed |= CONTROL_PLANE_PORTS
    if "etcd" in host.roles or ("control_plane" in host.roles and cluster.etcd.topology == "stacked"):
        fixed |= ETCD_PORTS
    listeners = [(host.ssh_port, "sshd", ssh_field)] + [(port, who, None) for port, who in fixed.items()]
    if "lb" in host.roles and cluster.api.mode == "keepalived_haproxy":
        listeners += [(cluster.api.port, "haproxy", "api.port")] + [(port, who, None) for port, who in LB_PORTS.items()]
    if cluster.uses_localhost_proxy(host):
        listeners.append((cluster.api.port, f"the API proxy ({cluster.workers.proxy})", "api.port"))
    return listeners


def check_ports(cluster):
    """A port the cluster file sets (api.port, the SSH ports) must not be one that something else
    already listens on on the same host."""
    clashes = {}  # (field, listener, port, other) -> names of the hosts
    for host in cluster.hosts:
        listeners = _listeners(cluster, host)
        for port, listener, field in listeners:
            for other_port, other, other_field in listeners:
                # a clash of api.port with an SSH port is reported once, on api.port
                if field and other_port == port and other_field not in (field, "api.port"):
                    clashes.setdefault((field, listener, port, other), []).append(host.name)
    return [Problem(field, f"{listener} cannot listen on {port} on {', '.join(hosts)}: {other} uses it there; "
                    "choose another port")
            for (field, listener, port, other), hosts in clashes.items()]


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


CHECKS = (check_settings, check_hosts, check_removals, check_groups, check_api, check_ports, check_networks,
          check_versions, check_certificates, check_downloads, backup.check_settings)


def warnings_for(cluster):
    """What works but is not highly available, or is probably not what was meant: printed before
    the run, which goes on. `cluster` is one that passed validate()."""
    warnings = []
    planes = cluster.control_planes
    members = planes if cluster.etcd.topology == "stacked" else cluster.etcd_hosts
    if len(planes) == 1:
        warnings.append(Problem("hosts", f"one control plane ({planes[0].name}): the API stops whenever it does; "
                                "three make it highly available"))
    if len(members) == 1:
        warnings.append(Problem("hosts", f"a single etcd member ({members[0].name}): losing it loses the "
                                "cluster's state; three keep a majority through one failure"))
    if cluster.api.mode == "keepalived_haproxy" and len(cluster.lb_hosts) == 1:
        warnings.append(Problem("hosts", f"one lb host ({cluster.lb_hosts[0].name}): the VIP has no other host "
                                "to move to; two keep the API reachable when one fails"))
    if cluster.api.mode == "none" and len(planes) > 1:
        warnings.append(Problem("api.mode", f"none: the control planes and kubectl reach the API through "
                                f"{planes[0].name} only, so losing it cuts them off while the others run; "
                                "kube_vip, keepalived_haproxy or an external load balancer avoid that"))
    if not cluster.group("worker") and not cluster.kubernetes.control_planes_schedulable:
        warnings.append(Problem("hosts", "no worker, and kubernetes.control_planes_schedulable is false: "
                                "workloads have nowhere to run"))
    certificates = cluster.certificates
    if certificates.renew_before * 24 >= certificates.validity_hours:
        warnings.append(Problem("certificates.renew_before", f"{certificates.renew_before} days is not shorter than "
                                f"certificates.validity_hours ({certificates.validity_hours} h): every certificate is "
                                "always within the renewal window, so every run renews every one of them"))
    user = cluster.kubectl_user
    logins = [host.name for host in planes if host.ssh_user == user.name]
    if logins:
        warnings.append(Problem("kubectl_user.name", f"'{user.name}' is also the SSH login user of "
                                f"{', '.join(logins)}, which can use sudo there and read admin.conf: its rights are "
                                f"then more than {user.cluster_role}'s; a user of its own keeps them apart"))
    return warnings


def validate(path):
    """Loads the cluster file and runs every check. Returns (Cluster or None, [Problem])."""
    cluster, problems = load(path)
    if cluster is None:
        return None, problems
    for run_check in CHECKS:
        problems += run_check(cluster)
    return cluster, problems
