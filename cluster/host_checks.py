"""The host checks: whether a host can run its part of the cluster, decided from its facts.

`findings` turns one host's facts into errors (the host is refused before anything on it is
changed) and warnings (printed); operations/host_checks.py reads the facts and reports.
"""

from cluster import downloads, paths
from cluster.kubeadm import refuses_cgroup_v1
from cluster.system import ARCH_NAMES, SUPPORTED_ARCHES, SUPPORTED_OS, TIME_SYNC, is_ip, os_supported, \
    supported_systems

MIN_CPUS = 2
MIN_MEMORY_MB = 1700  # kubeadm's own minimum for a control plane
# Free inotify instances a kubelet host needs: the kubelet's cAdvisor fails with "inotify_init:
# too many open files" when there are none, and every pod's containers take more.
MIN_FREE_INOTIFY = 64
LOW_FREE_INOTIFY = 256


def ca_files(cluster, secrets, roles):
    """{path on the host: local certificate file} of the CAs a host of these roles holds."""
    result = {}
    if "control_plane" in roles:
        result[f"{paths.PKI_DIR}/ca.crt"] = secrets.kubernetes_ca.cert
        result[f"{paths.PKI_DIR}/front-proxy-ca.crt"] = secrets.front_proxy_ca.cert
        result[f"{paths.KUBEADM_ETCD_PKI_DIR}/ca.crt"] = secrets.etcd_ca.cert
    if "etcd" in roles and cluster.etcd.topology == "external":
        result[f"{paths.ETCD_PKI_DIR}/ca.crt"] = secrets.etcd_ca.cert
    return result


def findings(cluster, node, facts, local_ca_sha256):
    """(errors, warnings) for one host. Errors refuse this host; warnings are printed.

    `facts` is what operations/host_checks.py gathers; `local_ca_sha256` maps each CA path on
    the host to the sha256 of the local state's file.
    """
    errors, warnings = [], []
    name, roles = node.name, set(node.roles)
    runs_kubelet = bool(roles & {"control_plane", "worker"})

    os_label = f"{facts['os_id'] or 'an unknown system'} {facts['os_version']}".strip()
    if not os_supported(facts["os_id"], facts["os_version"]):
        errors.append(f"{name}: {os_label} is not supported (supported: {supported_systems()})")
    elif SUPPORTED_OS[facts["os_id"]][0] not in TIME_SYNC[cluster.prep.time_sync]:
        errors.append(f"{name}: prep.time_sync {cluster.prep.time_sync} has no package on {os_label}: "
                      "use chrony")

    needed = downloads.for_roles(cluster, roles)
    arch = ARCH_NAMES.get(facts["arch"])
    if needed and arch is None:
        errors.append(f"{name}: architecture {facts['arch'] or 'unknown'} is not supported "
                      f"(supported: {', '.join(SUPPORTED_ARCHES)})")
    elif needed:
        missing = [f"{item.component} {item.version}" for item in needed if not item.sha256(cluster, arch)]
        if missing:
            errors.append(f"{name}: no sha256 is pinned for {', '.join(missing)} on {arch}: "
                          "add them to offline.checksums_file")

    if runs_kubelet:
        kube = cluster.kubernetes.version
        if facts["cgroup"] == 1 and refuses_cgroup_v1(kube) and not cluster.kubernetes.allow_cgroup_v1:
            errors.append(f"{name}: the host runs cgroup v1 and kubelet {kube} refuses it: boot it with "
                          "cgroup v2, or set kubernetes.allow_cgroup_v1: true (deprecated upstream)")
        elif facts["cgroup"] is None:
            warnings.append(f"{name}: cannot tell the cgroup version (/sys/fs/cgroup unreadable)")

    sizes = (("CPU(s)", facts["cpus"], MIN_CPUS, ""), ("memory", facts["memory_mb"], MIN_MEMORY_MB, " MB"))
    for what, have, minimum, unit in sizes if runs_kubelet else ():
        if have is None:
            warnings.append(f"{name}: cannot read the host's {what}")
        elif have < minimum:
            message = f"{name}: {have}{unit} {what}; a {{}} needs at least {minimum}{unit}"
            if "control_plane" in roles:
                errors.append(message.format("control plane"))
            else:
                warnings.append(message.format("Kubernetes node"))

    if runs_kubelet:
        _check_inotify(name, facts["inotify"], errors, warnings)

    for path, remote in sorted(facts["ca_sha256"].items()):
        if remote and remote != local_ca_sha256.get(path):
            errors.append(f"{name}: {path} is another CA than the one in the local state "
                          f"({cluster.state_dir}): continuing would replace a live cluster's CA. Use "
                          "this cluster's state directory (KUBEHA_STATE_DIR), or reset the host first")

    if facts["container"] and facts["swap"]["active"] and runs_kubelet:
        warnings.append(f"{name}: swap is on, and this {facts['container']} container shares it with "
                        "the machine: prep will not turn it off; turn it off on the machine")
    if not is_ip(cluster.endpoint_address_for(node)):
        warnings.append(f"{name}: {cluster.api.endpoint_name} is not put in /etc/hosts (api.external_address "
                        f"{cluster.endpoint_address_for(node)} is no IP address): DNS must resolve it")
    if facts["firewalls"]:
        warnings.append(f"{name}: {' and '.join(facts['firewalls'])} is active and may reject the cluster's "
                        "ports (API, etcd, kubelet, BGP, VXLAN): open them there, or turn it off")
    installed = facts["containerd"]
    if runs_kubelet and installed and installed.get("version") and installed["version"] != cluster.containerd.version:
        warnings.append(f"{name}: containerd {installed['version']} is installed; kubeha runs its own "
                        f"{cluster.containerd.version} from {paths.BIN_DIR} with its own unit: remove the package")
    if not facts["container"] and facts["time"]["service"] and not facts["time"]["synchronized"]:
        warnings.append(f"{name}: the clock is not synchronized yet ({facts['time']['service']})")
    return errors, warnings


def _check_inotify(name, inotify, errors, warnings):
    limit, used = inotify["max_user_instances"], inotify["instances"]
    if limit is None or used is None:
        warnings.append(f"{name}: cannot read the inotify limits (fs.inotify.max_user_instances)")
        return
    free = limit - used
    if free >= LOW_FREE_INOTIFY:
        return
    message = (f"{name}: {free} free inotify instances ({used} in use of fs.inotify.max_user_instances "
               f"{limit}); {{}}: raise fs.inotify.max_user_instances (e.g. to 8192 in /etc/sysctl.d)")
    if free < MIN_FREE_INOTIFY:
        errors.append(message.format(f"the kubelet needs at least {MIN_FREE_INOTIFY}, or its cAdvisor fails "
                                     "with \"inotify_init: too many open files\""))
    else:
        warnings.append(message.format(f"fewer than {LOW_FREE_INOTIFY} leaves little for the pods"))
