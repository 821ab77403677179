"""Every knob of the cluster file: its default, its allowed values and what it means.

This table is the single source of defaults. The loader fills missing keys from it and checks
values against it, and the README's defaults table is generated from it (a test keeps
the two in step).
"""

from dataclasses import dataclass
from typing import Any

from cluster import paths

ROLES = ("control_plane", "etcd", "worker", "lb")


@dataclass(frozen=True)
class Knob:
    path: str
    default: Any
    kind: str  # str, int, bool, ip, cidr, url, path, version, map, list
    doc: str
    choices: tuple = ()
    required: bool = False


KNOBS = (
    Knob("name", None, "str", "cluster name: names the local state directory", required=True),
    # how the deploy reaches the hosts; each host may override user, key and port
    Knob("ssh.user", None, "str", "SSH login user on every host", required=True),
    Knob("ssh.key", None, "path", "private key file for that user", required=True),
    Knob("ssh.port", 22, "int", "SSH port"),
    Knob("ssh.sudo", True, "bool", "use sudo for privileged work (login user is not root)"),
    Knob("ssh.known_hosts_file", None, "path", "known_hosts file to check host keys against"),
    Knob("ssh.strict_host_key_checking", "accept-new", "str", "OpenSSH StrictHostKeyChecking",
         choices=("yes", "accept-new")),
    # addresses
    Knob("network.node_cidr", None, "cidr", "subnet the hosts' addresses (and the VIP) live in",
         required=True),
    Knob("network.pod_cidr", "10.244.0.0/16", "cidr", "pod network = kubeadm podSubnet = Calico pool"),
    Knob("network.service_cidr", "10.96.0.0/12", "cidr", "Service ClusterIP range"),
    Knob("network.cluster_domain", "cluster.local", "str", "cluster DNS domain"),
    # the API endpoint
    Knob("api.mode", "keepalived_haproxy", "str",
         "who holds the API address: keepalived+haproxy on `lb` hosts, kube-vip on the control "
         "planes, an external load balancer, or none (client-side only)",
         choices=("keepalived_haproxy", "kube_vip", "external", "none")),
    Knob("api.vip", None, "ip", "virtual IP of the API (keepalived_haproxy, kube_vip)"),
    Knob("api.external_address", None, "str", "address of the external load balancer (external)"),
    Knob("api.port", paths.APISERVER_PORT, "int", "API port clients use on the endpoint"),
    Knob("api.interface", "eth0", "str", "interface the VIP is placed on"),
    Knob("api.virtual_router_id", 51, "int", "VRRP router id (keepalived)"),
    Knob("api.endpoint_name", "kube-api.kubeha.internal", "str",
         "name of the API endpoint in kubeadm's controlPlaneEndpoint; each host resolves it in "
         "/etc/hosts to the VIP or to its localhost proxy"),
    Knob("api.extra_sans", [], "list", "additional names/addresses for the apiserver certificate"),
    Knob("kube_vip.image", "ghcr.io/kube-vip/kube-vip", "str", "kube-vip image (api.mode kube_vip)"),
    Knob("kube_vip.version", "1.0.3", "version", "kube-vip version"),
    # how workers reach the API
    Knob("workers.api_access", "localhost_proxy", "str",
         "workers reach the API through a proxy on 127.0.0.1 that balances over every control "
         "plane, or through the VIP", choices=("localhost_proxy", "vip")),
    Knob("workers.proxy", "haproxy", "str", "the localhost proxy program", choices=("haproxy", "nginx")),
    # Kubernetes
    Knob("kubernetes.version", "1.35.8", "version", "Kubernetes version (kubeadm, kubelet, kubectl, images)"),
    Knob("kubernetes.kube_proxy_mode", "iptables", "str", "kube-proxy mode",
         choices=("iptables", "nftables", "ipvs")),
    Knob("kubernetes.control_planes_schedulable", False, "bool",
         "remove the control-plane taint so control planes also run workloads"),
    Knob("kubernetes.allow_cgroup_v1", False, "bool",
         "let kubelet >= 1.35 run on cgroup v1 hosts (failCgroupV1: false, and kubeadm's "
         "SystemVerification preflight error ignored); deprecated upstream"),
    Knob("kubernetes.kube_proxy_sets_conntrack_max", True, "bool",
         "kube-proxy raises nf_conntrack_max with the number of cores; turn off where the hosts are "
         "containers (LXC, systemd-nspawn) and the machine owns that limit"),
    Knob("kubernetes.image_registry", "registry.k8s.io", "str", "registry of the Kubernetes images"),
    Knob("kubernetes.node_labels", {}, "map", "labels put on every node (name: value)"),
    # etcd
    Knob("etcd.topology", "external", "str",
         "external: etcd as a systemd service with its own PKI on the `etcd` hosts; stacked: "
         "kubeadm's etcd static pod on each control plane", choices=("external", "stacked")),
    Knob("etcd.version", "3.6.14", "version",
         "etcd version (external topology; with stacked etcd, that of the etcdctl and etcdutl the snapshots use)"),
    # container runtime
    Knob("containerd.version", "2.2.3", "version", "containerd version"),
    Knob("containerd.runc_version", "1.3.3", "version", "runc version"),
    Knob("containerd.crictl_version", "1.35.0", "version", "crictl version"),
    Knob("containerd.cni_plugins_version", "1.8.0", "version", "CNI plugins version"),
    Knob("containerd.pause_image_tag", "3.10.1", "str", "tag of the pause (sandbox) image"),
    Knob("containerd.restrict_oom_score_adj", False, "bool",
         "give containers no lower OOM score adjustment than containerd's own: for hosts that may "
         "not lower it (containers without CAP_SYS_RESOURCE, like the lab's)"),
    Knob("containerd.registry_mirrors", {}, "map",
         "per-registry mirrors: {registry host: [mirror URL, ...]}"),
    # Calico
    Knob("calico.version", "3.31.5", "version", "Calico version"),
    Knob("calico.mode", "vxlan", "str", "encapsulation: VXLAN, IP-in-IP, or plain BGP routing",
         choices=("vxlan", "ipip", "bgp")),
    Knob("calico.mtu", 0, "int", "pod interface MTU; 0 lets Calico detect it"),
    Knob("calico.install", "manifest", "str", "install method", choices=("manifest", "operator")),
    # the kubectl user
    Knob("kubectl_user.name", "kubeops", "str",
         "Linux user on the control planes with its own client certificate and kubeconfig"),
    Knob("kubectl_user.group", "kubeha:admins", "str", "certificate organisation = RBAC group"),
    Knob("kubectl_user.cluster_role", "cluster-admin", "str", "ClusterRole bound to that group"),
    # certificates: how long they live, how early the deploy renews them
    Knob("certificates.renew_before", 30, "int",
         "days before expiry from which the deploy renews a certificate: kubeadm's on each control "
         "plane, external etcd's, the kubectl user's (kubelet client certificates renew themselves)"),
    Knob("certificates.validity_hours", 8760, "int",
         "lifetime of the certificates the deploy issues or renews (kubeadm's certificateValidityPeriod, "
         "external etcd's, the kubectl user's); the CAs keep theirs"),
    # host preparation
    Knob("prep.time_sync", "chrony", "str", "time sync service", choices=("chrony", "systemd-timesyncd")),
    Knob("prep.firewall", True, "bool",
         "nftables table that lets the cluster ports be reached only from the node, pod and "
         "service networks"),
    Knob("prep.packages", [], "list", "extra OS packages to install"),
    # where things are downloaded from
    Knob("downloads.kubernetes_url", "https://dl.k8s.io", "url", "Kubernetes binaries"),
    Knob("downloads.github_url", "https://github.com", "url", "etcd, containerd, runc, crictl, CNI"),
    Knob("downloads.github_raw_url", "https://raw.githubusercontent.com", "url", "Calico manifest"),
    Knob("offline.files_url", None, "url",
         "mirror laid out like the upstream URLs: https://HOST/PATH is fetched as FILES_URL/HOST/PATH"),
    Knob("offline.registry_mirror", None, "url",
         "registry that containerd pulls every upstream registry's images from"),
    Knob("offline.checksums_file", None, "path",
         "YAML {component: {version: {arch: sha256}}} adding to or replacing the pinned checksums"),
    Knob("offline.apt_proxy", None, "url", "HTTP proxy for the hosts' package manager"),
    # read by the lab only
    Knob("lab", {}, "map", "settings of the built-in lab (lab/ reads them, the deploy ignores them)"),
    # etcd snapshots (tasks/etcd_backup.py, backup.py, restore.py)
    Knob("backup.schedule", "*-*-* 00/6:00:00", "str",
         "when the etcd members' timer fires (systemd OnCalendar); the member that is the leader then "
         "takes the snapshot"),
    Knob("backup.keep", 8, "int",
         "etcd snapshots kept on each member and in the local state directory; older ones are deleted"),
    Knob("backup.min_free_mb", 1024, "int",
         "a snapshot is refused when it would leave less than this many MiB free on its file system"),
    Knob("backup.fetch", True, "bool", "every deploy copies the newest etcd snapshot into the local state directory"),
)

HOST_KEYS = {"name", "address", "roles", "ssh", "labels"}
HOST_SSH_KEYS = {"user", "key", "port"}
# An entry of `remove:`: a node taken out of the cluster, named by both its name and its address
# so that a typo matches no node; `ssh:` as for a host, to reach the machine for its cleanup.
REMOVAL_KEYS = {"name", "address", "ssh"}


def sections():
    """Top-level keys that hold sub-keys, mapped to their allowed sub-keys."""
    result = {}
    for knob in KNOBS:
        if "." in knob.path:
            section, key = knob.path.split(".", 1)
            result.setdefault(section, set()).add(key)
    return result


def yaml_text(value):
    """A default as the cluster file would write it: `true`, `6443`, `{}`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def markdown_table():
    """The README's defaults table (tests/test_docs.py keeps the README equal to it)."""
    rows = ["| knob | default | meaning |", "| --- | --- | --- |"]
    for knob in KNOBS:
        if knob.required:
            default = "*required*"
        elif knob.default in (None, {}, []):
            default = "—"
        else:
            default = f"`{yaml_text(knob.default)}`"
        choices = " \\| ".join(knob.choices)
        meaning = knob.doc + (f" ({choices})" if choices else "")
        rows.append(f"| `{knob.path}` | {default} | {meaning} |")
    return "\n".join(rows)

