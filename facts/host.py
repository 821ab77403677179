"""Facts about the host itself: its size, whether it is a container, swap, cgroup version, time
sync, kernel modules, SELinux labels, inotify limits, any other firewall, and what kubeha and
the cluster left on it (what a reset removes)."""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, sections


def _unescape(name: str) -> str:
    """/proc/swaps and /etc/fstab write a space in a path as \\040."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), name)


class SwapState(FactBase[dict]):
    """
    The swap in use (the devices or files in /proc/swaps) and the lines of /etc/fstab that
    mount swap (uncommented lines of type ``swap``; only those lines are printed).

    .. code:: python

        {"active": ["/dev/vda3"], "fstab": ["UUID=0a1b... none swap sw 0 0"]}
    """

    @staticmethod
    def default() -> dict:
        return {"active": [], "fstab": []}

    @override
    def command(self) -> str:
        return (
            f"echo '{MARKER}active'; cat /proc/swaps 2>/dev/null || true; "
            f"echo '{MARKER}fstab'; "
            "awk '$1 !~ /^#/ && $3 == \"swap\"' /etc/fstab 2>/dev/null || true"
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        active = []
        for line in parts.get("active", ("", []))[1]:
            fields = line.split()
            if fields and fields[0] != "Filename":
                active.append(_unescape(fields[0]))
        fstab = []
        for line in parts.get("fstab", ("", []))[1]:
            fields = line.split()
            if len(fields) >= 3 and not fields[0].startswith("#") and fields[2] == "swap":
                fstab.append(line.strip())
        return {"active": active, "fstab": fstab}


class CgroupVersion(FactBase[int | None]):
    """
    The cgroup version the host runs: 2 when /sys/fs/cgroup is a cgroup2 file system
    (``stat -fc %T``), 1 for anything else there (tmpfs with v1 hierarchies), None when it
    cannot be read.
    """

    @override
    def command(self) -> str:
        return "stat -fc %T /sys/fs/cgroup 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> int | None:
        fs_type = "".join(output).strip()
        if not fs_type:
            return None
        return 2 if fs_type == "cgroup2fs" else 1


class TimeSync(FactBase[dict]):
    """
    Which time-sync service is active (``systemctl is-active`` of chrony, chronyd and
    systemd-timesyncd; chronyd is reported as "chrony") and whether the clock is synchronized
    (``timedatectl show -p NTPSynchronized --value``). Without systemd both are unknown:
    service None, synchronized False.

    .. code:: python

        {"service": "chrony", "synchronized": True}
    """

    SERVICES = {"chrony": "chrony", "chronyd": "chrony", "systemd-timesyncd": "systemd-timesyncd"}

    @staticmethod
    def default() -> dict:
        return {"service": None, "synchronized": False}

    @override
    def command(self) -> str:
        return (
            f'echo "{MARKER}synchronized $(timedatectl show -p NTPSynchronized --value 2>/dev/null)"; '
            "for s in chrony chronyd systemd-timesyncd; do "
            f'echo "{MARKER}$s $(systemctl is-active $s 2>/dev/null)"; done'
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        state = self.default()
        state["synchronized"] = parts.get("synchronized", ("", []))[0] == "yes"
        for unit, service in self.SERVICES.items():
            if parts.get(unit, ("", []))[0] == "active":
                state["service"] = service
                break
        return state


def _key_values(output: list[str]) -> dict[str, str]:
    """``key=value`` lines as a dict (other lines are left out)."""
    values = {}
    for line in output:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _int(value: str | None) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class Resources(FactBase[dict]):
    """
    The host's CPUs (``nproc``) and memory (MemTotal of /proc/meminfo, in MB); None for what
    cannot be read.

    .. code:: python

        {"cpus": 4, "memory_mb": 7812}
    """

    @staticmethod
    def default() -> dict:
        return {"cpus": None, "memory_mb": None}

    @override
    def command(self) -> str:
        return ("echo cpus=$(nproc 2>/dev/null); "
                "awk '/^MemTotal:/ {print \"mem_kb=\" $2}' /proc/meminfo 2>/dev/null; true")

    @override
    def process(self, output: list[str]) -> dict:
        values = _key_values(output)
        mem_kb = _int(values.get("mem_kb"))
        return {"cpus": _int(values.get("cpus")), "memory_mb": mem_kb // 1024 if mem_kb else None}


class Container(FactBase[str | None]):
    """
    The container technology the host runs in (``systemd-detect-virt --container``:
    systemd-nspawn, lxc, docker, ...), None on a machine of its own.
    """

    @override
    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> str | None:
        found = "".join(output).strip()
        return found if found and found != "none" else None


class OtherFirewalls(FactBase[list]):
    """
    The host firewalls besides kubeha's own table that are active: firewalld (``systemctl
    is-active``) and ufw (``ENABLED=yes`` in /etc/ufw/ufw.conf), sorted.

    .. code:: python

        ["firewalld"]
    """

    default = list

    @override
    def command(self) -> str:
        return ("systemctl is-active firewalld 2>/dev/null | sed 's/^/firewalld=/'; "
                "grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf && echo ufw=active; true")

    @override
    def process(self, output: list[str]) -> list:
        return sorted(name for name, status in _key_values(output).items() if status == "active")


# How to tell a module is there: built-in modules have no /sys/module entry when they take no
# parameters, so look for what the module provides.
MODULE_PROVIDES = {
    "overlay": "grep -qw overlay /proc/filesystems",
    "br_netfilter": "test -e /proc/sys/net/bridge/bridge-nf-call-iptables",
}


class KernelModules(FactBase[list]):
    """
    Which of ``modules`` the kernel has now, loaded or built in (a /sys/module entry, or what
    the module provides: overlay in /proc/filesystems, br_netfilter's bridge sysctls), in the
    order given.

    .. code:: python

        ["overlay"]
    """

    default = list

    @override
    def command(self, modules: list[str]) -> str:
        probe = "; ".join(
            f"if test -d /sys/module/{m} || {MODULE_PROVIDES.get(m, 'false')}; then echo {m}; fi"
            for m in modules
        )
        return f"{probe}; true"

    @override
    def process(self, output: list[str]) -> list:
        return " ".join(output).split()


class SelinuxPendingLabels(FactBase[list]):
    """
    The files under ``paths`` whose SELinux label differs from the policy's (``restorecon -R
    -n -v``: what a relabel would change, one line each); ``[]`` when none does, or without
    restorecon.

    .. code:: python

        ["Would relabel /usr/local/bin/runc from user_tmp_t to bin_t"]
    """

    default = list

    @override
    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return f"restorecon -R -n -v {quoted} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> list:
        return [line.strip() for line in output if line.strip()]


class InotifyUsage(FactBase[dict]):
    """
    The host's inotify limits (fs.inotify.max_user_instances and max_user_watches) and the
    inotify instances root's processes hold now (``anon_inode:inotify`` among /proc/*/fd; the
    limit counts per user, and the kubelet runs as root; an instance shared by two fds counts
    twice). None for what cannot be read.

    .. code:: python

        {"max_user_instances": 128, "max_user_watches": 65536, "instances": 40}
    """

    @staticmethod
    def default() -> dict:
        return {"max_user_instances": None, "max_user_watches": None, "instances": None}

    @override
    def command(self) -> str:
        return (
            'echo "max_user_instances=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null)"; '
            'echo "max_user_watches=$(cat /proc/sys/fs/inotify/max_user_watches 2>/dev/null)"; '
            "echo \"instances=$(find /proc/[0-9]*/fd -user 0 -lname 'anon_inode:inotify' 2>/dev/null | wc -l)\""
        )

    @override
    def process(self, output: list[str]) -> dict:
        values = _key_values(output)
        return {key: _int(values.get(key)) for key in self.default()}


# The network state kube-proxy and Calico leave on a node, by name (KUBE-*, cali-*), and kubeha's
# own nftables table: what a reset removes, and nothing else.
OWN_CHAIN_PREFIXES = ("KUBE-", "cali-")
OWN_NFT_TABLES = ("kubeha", "kube-proxy", "calico")
OWN_LINKS = r"^(vxlan\.calico|vxlan-v6\.calico|kube-ipvs0|cali[0-9a-f]+)$"
IPTABLES_TOOLS = ("iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy")
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")


class KubehaFootprint(FactBase[dict]):
    """
    What kubeha, kubeadm, kube-proxy and Calico left on this host, among what a reset removes:

    + paths: which of these files, directories or links exist
    + units: these systemd units, for those systemd knows: whether active and enabled
    + marked: which of these files (globs allowed) begin with kubeha's "# Managed by kubeha" line
      (files at paths their packages own, such as /etc/haproxy/haproxy.cfg)
    + mounts: anything mounted under ``mounts_under`` (the kubelet's directory)
    + pods: how many pods crictl lists, when containerd's socket ``containerd_socket`` is there
    + hosts_block: whether /etc/hosts holds the line ``hosts_marker`` (the cluster's block)

    and, found by name: the KUBE-* and cali-* chains per iptables backend and table, the nftables
    tables kubeha, kube-proxy and calico, the KUBE-* and cali* ipsets, the Calico and IPVS
    interfaces, tunl0's addresses (Calico's IP-in-IP; the device itself belongs to the kernel
    module) and the routes Calico programs (protocols 80 and bird). Only names are printed.

    .. code:: python

        {"paths": ["/etc/kubeha"], "units": {"kubelet": {"active": True, "enabled": True}},
         "marked": [], "mounts": ["/var/lib/kubelet/pods/1/volumes/x"],
         "chains": {"iptables-nft": {"filter": ["KUBE-FIREWALL"]}}, "nft_tables": ["inet kubeha"],
         "ipsets": ["cali40all-ipam-pools"], "links": ["vxlan.calico"], "tunl0": ["10.244.1.0/32"],
         "routes": ["blackhole 10.244.1.0/26 proto 80"], "pods": 3, "hosts_block": True}
    """

    @staticmethod
    def default() -> dict:
        return {"paths": [], "units": {}, "marked": [], "mounts": [], "chains": {}, "nft_tables": [], "ipsets": [],
                "links": [], "tunl0": [], "routes": [], "pods": 0, "hosts_block": False}

    @override
    def command(self, paths: list[str], units: list[str], marked: list[str], mounts_under: str, hosts_marker: str,
                containerd_socket: str) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        globs = " ".join(p if re.fullmatch(r"[A-Za-z0-9_./*-]+", p) else shlex.quote(p) for p in marked)
        names = " ".join(shlex.quote(u) for u in units)
        chain_re = "|".join(OWN_CHAIN_PREFIXES)
        tables = " ".join(IPTABLES_TABLES)
        nft_names = " || ".join(f'$3 == "{name}"' for name in OWN_NFT_TABLES)
        return (
            f"echo '{MARKER}paths'; for p in {quoted}; do "
            "if [ -e \"$p\" ] || [ -L \"$p\" ]; then echo \"$p\"; fi; done; "
            f"echo '{MARKER}units'; for u in {names}; do printf '%s ' \"$u\"; "
            "systemctl show -p LoadState -p ActiveState -p UnitFileState \"$u\" 2>/dev/null | tr '\\n' ' '; "
            "echo; done; "
            f"echo '{MARKER}marked'; grep -l -s '^# Managed by kubeha' {globs} 2>/dev/null || true; "
            f"echo '{MARKER}mounts'; awk -v under={shlex.quote(mounts_under.rstrip('/') + '/')} "
            "'index($2, under) == 1 {print $2}' /proc/self/mounts 2>/dev/null || true; "
            f"echo '{MARKER}chains'; for t in {' '.join(IPTABLES_TOOLS)}; do "
            "command -v \"$t-save\" >/dev/null || continue; "
            f"for table in {tables}; do c=$(\"$t-save\" -t \"$table\" 2>/dev/null | "
            f"sed -n -E 's/^:(({chain_re})[^ ]*) .*/\\1/p' | tr '\\n' ' '); "
            "if [ -n \"$c\" ]; then echo \"$t $table $c\"; fi; done; done; "
            f"echo '{MARKER}nft'; nft list tables 2>/dev/null | awk '{nft_names} {{print $2, $3}}'; "
            f"echo '{MARKER}ipsets'; ipset list -n 2>/dev/null | grep -E '^(cali|KUBE-)' || true; "
            f"echo '{MARKER}links'; ip -o link show 2>/dev/null | awk -F': ' '{{print $2}}' | sed 's/@.*//' "
            f"| grep -E '{OWN_LINKS}' || true; "
            f"echo '{MARKER}tunl0'; ip -o -4 addr show dev tunl0 2>/dev/null | awk '{{print $4}}'; "
            # `ip route show proto P` leaves the protocol out of each line: put it back
            f"echo '{MARKER}routes'; for proto in 80 bird; do ip route show proto $proto 2>/dev/null "
            "| sed \"s/ *\\$/ proto $proto/\"; done; "
            f"echo '{MARKER}pods'; if [ -S {shlex.quote(containerd_socket)} ] && command -v crictl >/dev/null; then "
            "crictl pods -q 2>/dev/null | wc -l; fi; "
            f"echo '{MARKER}hosts_block'; "
            f"if grep -q -x -F {shlex.quote(hosts_marker)} /etc/hosts 2>/dev/null; then echo yes; fi; "
            "true"
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        lines = {name: [line.strip() for line in body if line.strip()] for name, (_, body) in parts.items()}
        footprint = self.default()
        footprint["paths"] = lines.get("paths", [])
        for line in lines.get("units", []):
            name, *properties = line.split()
            values = dict(p.split("=", 1) for p in properties if "=" in p)
            if values.get("LoadState") == "loaded":
                footprint["units"][name] = {
                    "active": values.get("ActiveState") in ("active", "activating", "reloading"),
                    "enabled": values.get("UnitFileState") in ("enabled", "enabled-runtime"),
                }
        footprint["marked"] = lines.get("marked", [])
        footprint["mounts"] = [_unescape(m) for m in lines.get("mounts", [])]
        for line in lines.get("chains", []):
            fields = line.split()
            if len(fields) >= 3 and fields[0] in IPTABLES_TOOLS and fields[1] in IPTABLES_TABLES:
                footprint["chains"].setdefault(fields[0], {})[fields[1]] = [
                    c for c in fields[2:] if c.startswith(OWN_CHAIN_PREFIXES)]
        footprint["nft_tables"] = [t for t in lines.get("nft", []) if len(t.split()) == 2
                                   and t.split()[1] in OWN_NFT_TABLES]
        footprint["ipsets"] = [s for s in lines.get("ipsets", []) if s.startswith(("cali", "KUBE-"))]
        footprint["links"] = [link for link in lines.get("links", []) if re.match(OWN_LINKS, link)]
        footprint["tunl0"] = lines.get("tunl0", [])
        footprint["routes"] = lines.get("routes", [])
        pods = lines.get("pods", [])
        footprint["pods"] = int(pods[0]) if pods and pods[0].isdigit() else 0
        footprint["hosts_block"] = lines.get("hosts_block", []) == ["yes"]
        return footprint
