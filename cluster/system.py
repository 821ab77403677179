"""The hosts' operating system: the systems kubeha supports, what prep installs and sets on
each, and the names a host resolves in its /etc/hosts block."""

import ipaddress

# /etc/os-release ID: (family, VERSION_IDs; for RHEL-likes the major version is compared)
SUPPORTED_OS = {
    "ubuntu": ("debian", ("22.04", "24.04")),
    "debian": ("debian", ("12", "13")),
    "rhel": ("rhel", ("9", "10")),
    "rocky": ("rhel", ("9", "10")),
}
OS_NAMES = {"ubuntu": "Ubuntu", "debian": "Debian", "rhel": "RHEL", "rocky": "Rocky Linux"}
# `uname -m` -> the architecture's name in release files
ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
SUPPORTED_ARCHES = ("amd64", "arm64")

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
MODULES = ("overlay", "br_netfilter")
# Only net.*: kernel.* and vm.* are the machine's in a container, and the kubelet sets what it needs.
SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": 1,
    "net.bridge.bridge-nf-call-ip6tables": 1,
    "net.ipv4.ip_forward": 1,
}


def supported_systems():
    """'Ubuntu 22.04/24.04, Debian 12/13, RHEL 9/10, Rocky Linux 9/10'."""
    return ", ".join(f"{OS_NAMES[i]} {'/'.join(v)}" for i, (_, v) in SUPPORTED_OS.items())


def os_supported(os_id, version):
    if os_id not in SUPPORTED_OS:
        return False
    family, versions = SUPPORTED_OS[os_id]
    if family == "rhel":
        version = version.split(".")[0]
    return version in versions


def family_of(os_id, version):
    """debian or rhel for a supported system, None for anything else."""
    return SUPPORTED_OS[os_id][0] if os_supported(os_id, version) else None


def packages(cluster, family):
    """The OS packages prep installs: the base list, the time sync package, prep.packages."""
    time_package = TIME_SYNC[cluster.prep.time_sync].get(family, (None, None))[0]
    wanted = PACKAGES[family] + ([time_package] if time_package else []) + list(cluster.prep.packages)
    return list(dict.fromkeys(wanted))


def is_ip(value):
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def hosts_entries(cluster, node):
    """The lines of this node's /etc/hosts block: every cluster host, then the API endpoint's
    name at the address this node reaches the API on (left out when that is not an IP address)."""
    lines = [f"{other.address} {other.name}" for other in cluster.hosts]
    endpoint = cluster.endpoint_address_for(node)
    if is_ip(endpoint):
        lines.append(f"{endpoint} {cluster.api.endpoint_name}")
    return lines
