"""The host itself: which systems kubeha supports, the preflight verdict, swap, kernel modules,
SELinux labels, stale registry files and services still running an old binary.

The helpers at the top answer from facts that cannot change during a run (OS, architecture,
whether the host is a container), so the stages may branch on them while planning. The
operations read their facts when they run and yield commands only when something differs,
otherwise they say why nothing is to do (host.noop).
"""

import ipaddress
import shlex

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, operation
from pyinfra.facts.files import Sha256File
from pyinfra.facts.server import Arch, Command, LinuxDistribution, Selinux
from pyinfra.operations import systemd

from cluster import backup, downloads
from cluster.context import ARCH_NAMES
from facts.containerd import ContainerdState
from facts.host import CgroupVersion, SwapState, TimeSync, UnitInstalled

# ---------------------------------------------------------------------------------------------
# Supported systems

# /etc/os-release ID: (family, VERSION_IDs; for RHEL-likes the major version is compared)
SUPPORTED_OS = {
    "ubuntu": ("debian", ("22.04", "24.04")),
    "debian": ("debian", ("12", "13")),
    "rhel": ("rhel", ("9", "10")),
    "rocky": ("rhel", ("9", "10")),
}
OS_NAMES = {"ubuntu": "Ubuntu", "debian": "Debian", "rhel": "RHEL", "rocky": "Rocky Linux"}
SUPPORTED_ARCHES = ("amd64", "arm64")


def supported_systems():
    """'Ubuntu 22.04/24.04, Debian 12/13, RHEL 9/10, Rocky Linux 9/10'."""
    return ", ".join(f"{OS_NAMES[i]} {'/'.join(v)}" for i, (_, v) in SUPPORTED_OS.items())


def os_release(pyinfra_host=None):
    """(ID, VERSION_ID) from /etc/os-release, lower-cased; ("", "") when unreadable."""
    meta = (pyinfra_host or host).get_fact(LinuxDistribution)["release_meta"]
    return meta.get("ID", "").strip().lower(), meta.get("VERSION_ID", "").strip().strip('"')


def os_supported(os_id, version):
    if os_id not in SUPPORTED_OS:
        return False
    family, versions = SUPPORTED_OS[os_id]
    if family == "rhel":
        version = version.split(".")[0]
    return version in versions


def os_family(pyinfra_host=None):
    """debian or rhel for a supported system, None for anything else."""
    os_id, version = os_release(pyinfra_host)
    return SUPPORTED_OS[os_id][0] if os_supported(os_id, version) else None


def container(pyinfra_host=None):
    """The container technology the host runs in (systemd-nspawn, lxc, docker...), or None."""
    found = (pyinfra_host or host).get_fact(Command, command="systemd-detect-virt --container 2>/dev/null || true")
    found = (found or "").strip()
    return found if found and found != "none" else None


# ---------------------------------------------------------------------------------------------
# What prep installs, per family

PACKAGES = {
    # curl and ca-certificates for the downloads; conntrack, socat, iptables, ipset, ethtool and
    # tc (iproute2) are what kubeadm's preflight looks for; nftables for the firewall table;
    # procps for sysctl; kmod for modprobe; tar/gzip for the release archives.
    "debian": ["ca-certificates", "curl", "conntrack", "socat", "iptables", "ipset", "nftables",
               "ethtool", "iproute2", "kmod", "procps", "tar", "gzip"],
    # curl-minimal is part of the base system (installing "curl" would conflict with it);
    # container-selinux gives containerd's files their labels under an enforcing SELinux.
    "rhel": ["ca-certificates", "conntrack-tools", "socat", "iptables-nft", "ipset", "nftables",
             "ethtool", "iproute", "iproute-tc", "kmod", "procps-ng", "tar", "gzip", "container-selinux"],
}
TIME_SYNC = {  # prep.time_sync -> family -> (package, systemd unit)
    "chrony": {"debian": ("chrony", "chrony"), "rhel": ("chrony", "chronyd")},
    "systemd-timesyncd": {"debian": ("systemd-timesyncd", "systemd-timesyncd")},
}


def packages(cluster, family):
    """The OS packages prep installs: the base list, the time sync package, prep.packages."""
    time_package = TIME_SYNC[cluster.prep.time_sync].get(family, (None, None))[0]
    wanted = PACKAGES[family] + ([time_package] if time_package else []) + list(cluster.prep.packages)
    return list(dict.fromkeys(wanted))


# ---------------------------------------------------------------------------------------------
# The firewall table's values

KUBELET_PORTS = (10250, 10256, 10257, 10259)  # kubelet, kube-proxy health, controller-manager, scheduler
CALICO_TCP = (179, 5473, 9099)  # BGP, Typha, Felix health
CALICO_UDP = (4789,)  # VXLAN


def firewall_values(cluster, apiserver_port, etcd_ports, extra_tcp=()):
    """What templates/kubeha.nft.j2 needs: the cluster's own source networks per family and the
    ports only they may reach."""
    networks = [cluster.network.node_cidr, cluster.network.pod_cidr, cluster.network.service_cidr]
    if cluster.api.mode == "external" and _is_ip(cluster.api.external_address):
        networks.append(cluster.api.external_address)  # the load balancer's health checks
    sources = {4: [], 6: []}
    for network in networks:
        parsed = ipaddress.ip_network(network, strict=False)
        if str(parsed) not in sources[parsed.version]:
            sources[parsed.version].append(str(parsed))
    tcp = sorted({cluster.api.port, apiserver_port, *KUBELET_PORTS, *CALICO_TCP, *extra_tcp})
    etcd_low, etcd_high = min(etcd_ports), max(etcd_ports)
    tcp_items = [str(p) for p in tcp if not etcd_low <= p <= etcd_high]
    tcp_items.append(f"{etcd_low}-{etcd_high}" if etcd_high > etcd_low else str(etcd_low))
    tcp_items.sort(key=lambda item: int(item.split("-")[0]))
    return {"sources_v4": sources[4], "sources_v6": sources[6], "tcp_ports": tcp_items,
            "udp_ports": [str(p) for p in CALICO_UDP]}


def _is_ip(value):
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def hosts_entries(cluster, node):
    """The lines of this node's /etc/hosts block: every cluster host, then the API endpoint's
    name at the address this node reaches the API on (None when that is not an IP address)."""
    lines = [f"{other.address} {other.name}" for other in cluster.hosts]
    endpoint = cluster.endpoint_address_for(node)
    if _is_ip(endpoint):
        lines.append(f"{endpoint} {cluster.api.endpoint_name}")
    return lines


# ---------------------------------------------------------------------------------------------
# The container runtime's configuration

RUNC = "/usr/local/sbin/runc"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CERTS_DIR = "/etc/containerd/certs.d"
UPSTREAM_REGISTRIES = ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io")


def registry_hosts(cluster):
    """{registry: [mirror URL, ...]}: containerd.registry_mirrors first, then
    offline.registry_mirror for every upstream registry."""
    result = {registry: list(mirrors) for registry, mirrors in cluster.containerd.registry_mirrors.items()}
    if cluster.offline.registry_mirror:
        for registry in UPSTREAM_REGISTRIES:
            mirrors = result.setdefault(registry, [])
            if cluster.offline.registry_mirror not in mirrors:
                mirrors.append(cluster.offline.registry_mirror)
    return result


def containerd_config(cluster, node):
    """/etc/containerd/config.toml for this node."""
    from cluster.render import render

    return render(
        "containerd-config.toml.j2", cluster=cluster, node=node, socket=CONTAINERD_SOCKET, certs_dir=CERTS_DIR,
        runc=RUNC, sandbox_image=f"{cluster.kubernetes.image_registry}/pause:{cluster.containerd.pause_image_tag}",
    )


# ---------------------------------------------------------------------------------------------
# Preflight

MIN_CPUS = 2
MIN_MEMORY_MB = 1700  # kubeadm's own minimum for a control plane
RESOURCES = "echo cpus=$(nproc 2>/dev/null); awk '/^MemTotal:/ {print \"mem_kb=\" $2}' /proc/meminfo 2>/dev/null; true"
HOST_FIREWALLS = ("systemctl is-active firewalld 2>/dev/null | sed 's/^/firewalld=/'; "
                  "grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf && echo ufw=active; true")


def downloads_for(cluster, roles):
    """The release files a host with these roles fetches (the containerd stage and binaries on
    control planes and workers, the etcd release on the hosts that run an etcd member)."""
    wanted = set()
    if "control_plane" in roles or "worker" in roles:
        wanted |= {"kubeadm", "kubelet", "kubectl", "containerd", "runc", "crictl", "cni_plugins"}
    if backup.runs_etcd_member(cluster, roles):
        wanted.add("etcd")
    return [item for item in downloads.items(cluster) if item.component in wanted]


def ca_files(cluster, roles, data):
    """{path on the host: local certificate file} of the CAs a host of these roles holds."""
    from cluster.context import secrets

    local = secrets()
    result = {}
    if "control_plane" in roles:
        result[f"{data.pki_dir}/ca.crt"] = local.kubernetes_ca.cert
        result[f"{data.pki_dir}/front-proxy-ca.crt"] = local.front_proxy_ca.cert
        result[f"{data.pki_dir}/etcd/ca.crt"] = local.etcd_ca.cert
    if "etcd" in roles and cluster.etcd.topology == "external":
        result[f"{data.etcd_pki_dir}/ca.crt"] = local.etcd_ca.cert
    return result


def _key_values(text):
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def gather(ca_paths):
    """The facts preflight decides on, read now."""
    os_id, version = os_release()
    resources = _key_values(host.get_fact(Command, command=RESOURCES))
    mem_kb = _int(resources.get("mem_kb"))
    firewalls = _key_values(host.get_fact(Command, command=HOST_FIREWALLS))
    return {
        "os_id": os_id,
        "os_version": version,
        "arch": (host.get_fact(Arch) or "").strip(),
        "cgroup": host.get_fact(CgroupVersion),
        "cpus": _int(resources.get("cpus")),
        "memory_mb": mem_kb // 1024 if mem_kb else None,
        "container": container(),
        "swap": host.get_fact(SwapState),
        "time": host.get_fact(TimeSync),
        "containerd": host.get_fact(ContainerdState),
        "firewalls": sorted(name for name, status in firewalls.items() if status == "active"),
        "ca_sha256": {path: host.get_fact(Sha256File, path=path) for path in ca_paths},
    }


def findings(cluster, node, facts, local_ca_sha256):
    """(errors, warnings) for one host. Errors stop this host; warnings are printed.

    `local_ca_sha256` maps each CA path on the host to the sha256 of the local state's file.
    """
    from packaging.version import Version

    errors, warnings = [], []
    name, roles = node.name, set(node.roles)
    runs_kubelet = bool(roles & {"control_plane", "worker"})

    os_label = f"{facts['os_id'] or 'an unknown system'} {facts['os_version']}".strip()
    if not os_supported(facts["os_id"], facts["os_version"]):
        errors.append(f"{name}: {os_label} is not supported (supported: {supported_systems()})")
    elif SUPPORTED_OS[facts["os_id"]][0] not in TIME_SYNC[cluster.prep.time_sync]:
        errors.append(f"{name}: prep.time_sync {cluster.prep.time_sync} has no package on {os_label}: "
                      "use chrony")

    needed = downloads_for(cluster, roles)
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
        if facts["cgroup"] == 1 and Version(kube) >= Version("1.35") and not cluster.kubernetes.allow_cgroup_v1:
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

    for path, remote in sorted(facts["ca_sha256"].items()):
        if remote and remote != local_ca_sha256.get(path):
            errors.append(f"{name}: {path} is another CA than the one in the local state "
                          f"({cluster.state_dir}): continuing would replace a live cluster's CA. Use "
                          "this cluster's state directory (KUBEHA_STATE_DIR), or reset the host first")

    if facts["container"] and facts["swap"]["active"] and runs_kubelet:
        warnings.append(f"{name}: swap is on, and this {facts['container']} container shares it with "
                        "the machine: prep will not turn it off; turn it off on the machine")
    if not _is_ip(cluster.endpoint_address_for(node)):
        warnings.append(f"{name}: {cluster.api.endpoint_name} is not put in /etc/hosts (api.external_address "
                        f"{cluster.endpoint_address_for(node)} is no IP address): DNS must resolve it")
    if facts["firewalls"]:
        warnings.append(f"{name}: {' and '.join(facts['firewalls'])} is active and may reject the cluster's "
                        "ports (API, etcd, kubelet, BGP, VXLAN): open them there, or turn it off")
    installed = facts["containerd"]
    if runs_kubelet and installed and installed.get("version") and installed["version"] != cluster.containerd.version:
        warnings.append(f"{name}: containerd {installed['version']} is installed; kubeha runs its own "
                        f"{cluster.containerd.version} from /usr/local/bin with its own unit: remove the package")
    if not facts["container"] and facts["time"]["service"] and not facts["time"]["synchronized"]:
        warnings.append(f"{name}: the clock is not synchronized yet ({facts['time']['service']})")
    return errors, warnings


def _refuse(state, host, errors):
    for error in errors:
        host.log_styled(f"preflight failed: {error}", fg="red", log_func=logger.error)
    return False  # a failed command: pyinfra fails this host and runs nothing more on it


@operation()
def preflight(cluster, node, local_ca_sha256):
    """Fail this host, naming it and every problem, when it cannot run its part of the cluster;
    print warnings. Changes nothing."""
    facts = gather(sorted(local_ca_sha256))
    errors, warnings = findings(cluster, node, facts, local_ca_sha256)
    for warning in warnings:
        host.log_styled(f"preflight warning: {warning}", fg="yellow", log_func=logger.warning)
    if not errors:
        host.noop("the host passed preflight")
        return
    if not state.is_executing:  # --dry: say now what the run would stop at
        for error in errors:
            host.log_styled(f"preflight will fail: {error}", fg="red", log_func=logger.error)
    yield FunctionCommand(_refuse, (errors,), {})


# ---------------------------------------------------------------------------------------------
# Swap, kernel modules

FSTAB_SWAP = r"^([[:space:]]*[^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap([[:space:]].*)?)$"
COMMENT_FSTAB_SWAP = "sed -i -E " + shlex.quote(f"s/{FSTAB_SWAP}/# kubeha: swap off for Kubernetes: \\1/") + " /etc/fstab"


@operation()
def swap_off(in_container=None):
    """No swap now (swapoff -a), none after a reboot (the fstab lines commented out, swap.target
    masked so no generator's swap unit starts). In a container the swap in use is the machine's,
    and so are its devices: only the container's own fstab is edited."""
    swap = host.get_fact(SwapState)
    changed = False
    if swap["active"] and not in_container:
        changed = True
        yield "swapoff -a"
    if swap["fstab"]:
        changed = True
        yield COMMENT_FSTAB_SWAP
    if not in_container:
        unit = host.get_fact(Command, command="systemctl is-enabled swap.target 2>/dev/null || true")
        if (unit or "").strip() != "masked":
            changed = True
            yield "systemctl mask swap.target"
    if not changed:
        if swap["active"]:
            host.noop(f"swap {', '.join(swap['active'])} is the machine's ({in_container}): left alone")
        else:
            host.noop("swap is off")


# How to tell a module is there: built-in modules have no /sys/module entry when they take no
# parameters, so look for what the module provides.
MODULE_PRESENT = {
    "overlay": "grep -qw overlay /proc/filesystems",
    "br_netfilter": "test -e /proc/sys/net/bridge/bridge-nf-call-iptables",
}


@operation()
def kernel_modules(modules):
    """Load the modules that are not there yet (modprobe)."""
    probe = "; ".join(
        f"if test -d /sys/module/{m} || {MODULE_PRESENT.get(m, 'false')}; then echo {m}; fi" for m in modules
    )
    present = set((host.get_fact(Command, command=f"{probe}; true") or "").split())
    missing = [m for m in modules if m not in present]
    if not missing:
        host.noop(f"{', '.join(modules)} loaded")
        return
    for module in missing:
        yield f"modprobe {shlex.quote(module)}"


# ---------------------------------------------------------------------------------------------
# The container runtime's files and service


@operation()
def selinux_relabel(paths):
    """Give files installed outside a package their SELinux labels (restorecon), when SELinux is
    on and a label differs: a binary moved in from /tmp keeps a temporary file's label, which
    systemd may not execute."""
    if (host.get_fact(Selinux) or {}).get("mode") != "enabled":
        host.noop("SELinux is off")
        return
    quoted = " ".join(shlex.quote(p) for p in paths)
    pending = host.get_fact(Command, command=f"restorecon -R -n -v {quoted} 2>/dev/null || true")
    if not (pending or "").strip():
        host.noop(f"SELinux labels of {', '.join(paths)} are right")
        return
    yield f"restorecon -R {quoted}"


@operation()
def remove_stale_registry_hosts(certs_dir, wanted):
    """Remove the hosts.toml files kubeha wrote for registries no longer configured."""
    found = host.get_fact(
        Command, command=f"grep -l '^# Managed by kubeha' {shlex.quote(certs_dir)}/*/hosts.toml 2>/dev/null || true"
    )
    stale = [p for p in (found or "").split() if p.rsplit("/", 2)[-2] not in wanted]
    if not stale:
        host.noop("no stale registry configuration")
        return
    for path in stale:
        directory = path.rsplit("/", 1)[0]
        yield f"rm -f {shlex.quote(path)} && rmdir --ignore-fail-on-non-empty {shlex.quote(directory)}"


@operation()
def restart_if_running_another(service, binary):
    """Restart `service` when its running process executes another file than `binary` (the
    links moved to a new release, the daemon still runs the old one). containerd keeps its
    containers running across a restart."""
    running = host.get_fact(
        Command,
        command=(f"pid=$(systemctl show -p MainPID --value {shlex.quote(service)} 2>/dev/null); "
                 'if [ -n "$pid" ] && [ "$pid" != 0 ]; then readlink "/proc/$pid/exe"; fi; true'),
    )
    running = (running or "").strip()
    if not running:
        host.noop(f"{service} is not running")
    elif running == binary:
        host.noop(f"{service} runs {binary}")
    else:
        yield f"systemctl restart {shlex.quote(service)}"


@operation()
def packaged_service_off(service, started_by_package):
    """A service its package starts by itself (Debian starts a service while installing it)
    stopped and disabled. On a fresh host a --dry finds no unit yet, because the package is not
    installed; when `started_by_package`, it still announces the stop the run will make."""
    if not state.is_executing and not host.get_fact(UnitInstalled, unit=f"{service}.service"):
        if started_by_package:
            yield f"systemctl disable --now {shlex.quote(service)}"
        else:
            host.noop(f"{service} is not installed yet, and its package does not start it")
        return
    yield from systemd.service._inner(service=service, running=False, enabled=False)
