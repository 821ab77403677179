"""Root file systems: the debootstrapped base (built once, cached) and each host's own full
copy of it, made into a distinct machine (hostname, machine-id, ssh host keys, user)."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from . import paths
from .config import Host, LabConfig
from .machine_apt import Mirror, as_http
from .proc import LabError, run

# What a host has besides Debian's minbase: enough to boot systemd, be reached over ssh by
# a deploy tool (sftp included) and to behave like a small real Debian server.
BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "libpam-systemd",
    "dbus",
    "openssh-server",
    "openssh-sftp-server",
    "python3",
    "iproute2",
    "iputils-ping",
    "procps",
    "ca-certificates",
    "kmod",
    "curl",
    "sudo",
    "netbase",
    "gpg",
    "less",
]
# Newer suites moved the default sysctl.d settings (ping_group_range, ...) out of systemd into
# a package that minbase (no Recommends) leaves out; a real Debian host has it.
EXTRA_PACKAGES = {"bookworm": [], "bullseye": []}
EXTRA_PACKAGES_DEFAULT = ["linux-sysctl-defaults"]


def packages(suite: str) -> list[str]:
    return BASE_PACKAGES + EXTRA_PACKAGES.get(suite, EXTRA_PACKAGES_DEFAULT)


BASE_FORMAT = 1  # bump when the base recipe changes: cached bases of older formats are rebuilt
BASE_MARKER = ".kubeha-lab-base.json"
MACHINE_MARKER = ".kubeha-lab-machine.json"
MACHINE_FORMAT = 3  # 3: the lab's hosts in a marked block of /etc/hosts, rewritten as the lab grows

# Kernel features a deploy may `modprobe`. This kernel has no loadable modules: whatever is
# built in (CONFIG_X=y) is listed in the host's modules.builtin so modprobe succeeds for it,
# and fails (as on a real host without the module) for the rest (ip_vs, ...).
MODULE_CONFIG = {
    "overlay": ("fs/overlayfs", "CONFIG_OVERLAY_FS"),
    "br_netfilter": ("net/bridge", "CONFIG_BRIDGE_NETFILTER"),
    "bridge": ("net/bridge", "CONFIG_BRIDGE"),
    "veth": ("drivers/net", "CONFIG_VETH"),
    "vxlan": ("drivers/net/vxlan", "CONFIG_VXLAN"),
    "ipip": ("net/ipv4", "CONFIG_NET_IPIP"),
    "tun": ("drivers/net", "CONFIG_TUN"),
    "dummy": ("drivers/net", "CONFIG_DUMMY"),
    "nf_conntrack": ("net/netfilter", "CONFIG_NF_CONNTRACK"),
    "nf_nat": ("net/netfilter", "CONFIG_NF_NAT"),
    "nf_tables": ("net/netfilter", "CONFIG_NF_TABLES"),
    "nfnetlink": ("net/netfilter", "CONFIG_NETFILTER_NETLINK"),
    "x_tables": ("net/netfilter", "CONFIG_NETFILTER_XTABLES"),
    "ip_tables": ("net/ipv4/netfilter", "CONFIG_IP_NF_IPTABLES"),
    "iptable_filter": ("net/ipv4/netfilter", "CONFIG_IP_NF_FILTER"),
    "iptable_nat": ("net/ipv4/netfilter", "CONFIG_IP_NF_NAT"),
    "iptable_mangle": ("net/ipv4/netfilter", "CONFIG_IP_NF_MANGLE"),
    "iptable_raw": ("net/ipv4/netfilter", "CONFIG_IP_NF_RAW"),
    "ip6_tables": ("net/ipv6/netfilter", "CONFIG_IP6_NF_IPTABLES"),
    "ip6table_filter": ("net/ipv6/netfilter", "CONFIG_IP6_NF_FILTER"),
    "ip6table_nat": ("net/ipv6/netfilter", "CONFIG_IP6_NF_NAT"),
    "ip6table_mangle": ("net/ipv6/netfilter", "CONFIG_IP6_NF_MANGLE"),
    "ip_set": ("net/netfilter/ipset", "CONFIG_IP_SET"),
    "xt_conntrack": ("net/netfilter", "CONFIG_NETFILTER_XT_MATCH_CONNTRACK"),
    "xt_MASQUERADE": ("net/netfilter", "CONFIG_NETFILTER_XT_TARGET_MASQUERADE"),
    "xt_mark": ("net/netfilter", "CONFIG_NETFILTER_XT_MARK"),
    "xt_comment": ("net/netfilter", "CONFIG_NETFILTER_XT_MATCH_COMMENT"),
    "xt_multiport": ("net/netfilter", "CONFIG_NETFILTER_XT_MATCH_MULTIPORT"),
    "xt_addrtype": ("net/netfilter", "CONFIG_NETFILTER_XT_MATCH_ADDRTYPE"),
    "xt_set": ("net/netfilter", "CONFIG_NETFILTER_XT_SET"),
    "xt_statistic": ("net/netfilter", "CONFIG_NETFILTER_XT_MATCH_STATISTIC"),
    "xt_physdev": ("net/netfilter", "CONFIG_NETFILTER_XT_MATCH_PHYSDEV"),
    "xt_nat": ("net/netfilter", "CONFIG_NETFILTER_XT_NAT"),
    "ip_vs": ("net/netfilter/ipvs", "CONFIG_IP_VS"),
    "ip_vs_rr": ("net/netfilter/ipvs", "CONFIG_IP_VS_RR"),
    "nf_conntrack_netlink": ("net/netfilter", "CONFIG_NF_CT_NETLINK"),
    "sch_htb": ("net/sched", "CONFIG_NET_SCH_HTB"),
}

# Sysctls kubelet checks (and sets unless protectKernelDefaults) at these values. Inside a
# host each is a small writable file bind-mounted over its /proc/sys entry: kubelet reads
# its value, a write changes only that file. The rest of /proc/sys except net/ is read-only.
KUBELET_SYSCTLS = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}

INIT_PATH = "/usr/local/sbin/kubeha-lab-init"
INIT_SCRIPT = r"""#!/bin/sh
# PID 1 of a kubeha lab host (written by the lab): make the host safe and usable, then
# become systemd. Runs before anything of the host's own, systemd included.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "kubeha-lab-init: $*" >&2; }

# 1. Writable cgroup controllers: nspawn mounts them read-only; runc/containerd need to
#    create cgroups. A plain remount,rw says "busy", a bind remount works. (The host's
#    cgroup namespace is rooted in its own cgroup, so it only sees its own subtree.)
for d in /sys/fs/cgroup/*; do
    mountpoint -q "$d" || continue
    mount -o remount,bind,rw "$d" || say "cannot remount $d read-write"
done

# 2. /proc/sys: the machine's kernel.*, vm.*, fs.*... are shared with every host, so all of
#    /proc/sys is read-only except net/ (per network namespace). Sysctls kubelet insists on
#    are shown through small writable files.
mount --make-rprivate /proc
mount --rbind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || { say "cannot protect /proc/sys"; exit 1; }
mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net || say "cannot make /proc/sys/net writable"
mkdir -p /run/kubeha-lab/sysctl
while read -r key value; do
    [ -n "$key" ] || continue
    f=/run/kubeha-lab/sysctl/$key
    target=/proc/sys/$(echo "$key" | tr . /)
    [ -e "$target" ] || continue
    echo "$value" > "$f"
    mount --bind "$f" "$target" || say "cannot show $key"
done < /etc/kubeha-lab/sysctl-values

exec /lib/systemd/systemd "$@"
"""

SSHD_CONFIG = """\
# Written by the kubeha lab.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UseDNS no
"""


# ---- base -------------------------------------------------------------------------------


def base_dir(suite: str) -> Path:
    return paths.ROOTFS_CACHE / suite


def _base_spec(suite: str, mirror: Mirror) -> dict:
    return {"format": BASE_FORMAT, "suite": suite, "packages": packages(suite)}


def base_ok(suite: str, mirror: Mirror) -> bool:
    try:
        have = json.loads((base_dir(suite) / BASE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return {k: have.get(k) for k in ("format", "suite", "packages")} == _base_spec(suite, mirror)


def _sources(suite: str, mirror: Mirror) -> str:
    text = (
        "# Written by the kubeha lab: the machine's own Debian mirror, reached through the\n"
        "# lab's apt proxy (see /etc/apt/apt.conf.d/01kubeha-lab-proxy).\n"
        f"Types: deb\nURIs: {as_http(mirror.debian)}\nSuites: {suite} {suite}-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    if mirror.security:
        text += (
            f"\nTypes: deb\nURIs: {as_http(mirror.security)}\nSuites: {suite}-security\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    return text


def ensure_base(suite: str, mirror: Mirror, progress) -> bool:
    """Debootstrap the base rootfs once; later calls find it cached. True if built now."""
    paths.ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    with open(paths.ROOTFS_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if base_ok(suite, mirror):
            return False
        final = base_dir(suite)
        tmp = paths.ROOTFS_CACHE / f".{suite}.building"
        for d in (tmp, final):
            if d.exists():
                _rmtree(d)
        progress("rootfs", None, f"debootstrap {suite} from {mirror.debian} (takes a few minutes)")
        t0 = time.monotonic()
        logf = paths.ROOTFS_CACHE / f"debootstrap-{suite}.log"
        with open(logf, "w") as log:
            cp = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(packages(suite))}",
                    suite,
                    str(tmp),
                    mirror.debian,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if cp.returncode != 0:
            tail = "\n".join(logf.read_text().splitlines()[-15:])
            raise LabError(f"debootstrap {suite} failed (log: {logf}):\n{tail}")
        progress("rootfs", None, f"debootstrap done in {time.monotonic() - t0:.0f}s; cleaning up")
        run(["chroot", str(tmp), "apt-get", "clean"])
        # Per-machine identity is made for each copy: none may be shared.
        for f in (tmp / "etc/ssh").glob("ssh_host_*"):
            f.unlink()
        (tmp / "etc/machine-id").write_text("")
        dbus_id = tmp / "var/lib/dbus/machine-id"
        if dbus_id.exists() and not dbus_id.is_symlink():
            dbus_id.unlink()
        (tmp / "etc/apt/sources.list").unlink(missing_ok=True)
        (tmp / "etc/apt/sources.list.d").mkdir(exist_ok=True)
        (tmp / "etc/apt/sources.list.d/debian.sources").write_text(_sources(suite, mirror))
        spec = _base_spec(suite, mirror)
        spec["built"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        spec["debootstrap_seconds"] = round(time.monotonic() - t0, 1)
        (tmp / BASE_MARKER).write_text(json.dumps(spec, indent=1) + "\n")
        os.rename(tmp, final)
        logf.unlink(missing_ok=True)
        return True


# ---- machines -----------------------------------------------------------------------------


def machine_dir(name: str) -> Path:
    return paths.MACHINES / name


def _machine_spec(lab: LabConfig, host: Host) -> dict:
    return {"format": MACHINE_FORMAT, "lab": lab.fingerprint(), "host": host.name, "address": host.address}


def machine_ok(lab: LabConfig, host: Host) -> bool:
    try:
        have = json.loads((machine_dir(host.name) / MACHINE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return have == _machine_spec(lab, host)


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(mode)


def _rmtree(p: Path) -> None:
    # --one-file-system: never follow a stray mount out of the lab's directories.
    run(["rm", "-rf", "--one-file-system", str(p)])


def create_machine(lab: LabConfig, host: Host, mirror: Mirror, pubkey: str) -> str:
    """Full copy of the base made into host NAME. Returns its ssh host public key line."""
    final = machine_dir(host.name)
    tmp = paths.MACHINES / f".{host.name}.building"
    paths.MACHINES.mkdir(parents=True, exist_ok=True)
    for d in (tmp, final):
        if d.exists():
            _rmtree(d)
    run(["cp", "-a", "--reflink=auto", str(base_dir(lab.suite)), str(tmp)], timeout=900)
    (tmp / BASE_MARKER).unlink(missing_ok=True)
    customize(tmp, lab, host, mirror, pubkey)
    (tmp / MACHINE_MARKER).write_text(json.dumps(_machine_spec(lab, host)) + "\n")
    os.rename(tmp, final)
    return host_key(host.name)


def host_key(name: str) -> str:
    """The host's ssh host key as "TYPE BASE64"."""
    return " ".join((machine_dir(name) / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])


LAB_HOSTS_BEGIN = "# lab hosts (written by the kubeha lab)"
LAB_HOSTS_END = "# end of lab hosts"


def write_lab_hosts(root: Path, lab: LabConfig) -> None:
    """Every lab host by name in ROOT's /etc/hosts, in the lab's own block: the rest of the file
    (the deploy's block among it) stays as it is. Done again on every machine when hosts are
    added to or removed from a running lab."""
    path = root / "etc/hosts"
    lines = path.read_text().splitlines() if path.exists() else []
    if LAB_HOSTS_BEGIN in lines and LAB_HOSTS_END in lines[lines.index(LAB_HOSTS_BEGIN):]:
        begin = lines.index(LAB_HOSTS_BEGIN)
        end = lines.index(LAB_HOSTS_END, begin)
        before, after = lines[:begin], lines[end + 1:]
    else:
        before, after = lines, []
    block = [LAB_HOSTS_BEGIN, *(f"{h.address}\t{h.name}" for h in lab.hosts), LAB_HOSTS_END]
    text = "\n".join(before + block + after) + "\n"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(".hosts.kubeha-lab")
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, path)


def customize(root: Path, lab: LabConfig, host: Host, mirror: Mirror, pubkey: str) -> None:
    user = lab.ssh_user
    _write(root, "/etc/hostname", host.name + "\n")
    _write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\n")
    write_lab_hosts(root, lab)
    _write(root, "/etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    _write(root, "/etc/default/locale", "LANG=C.UTF-8\n")
    # No DNS leaves the lab: the gateway answers DNS queries with "port unreachable" at once.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    _write(root, "/etc/resolv.conf", f"# kubeha lab: no DNS outside the lab\nnameserver {lab.gateway}\n")

    # ssh: fresh host key, key-only login for USER, no root login.
    for f in (root / "etc/ssh").glob("ssh_host_*"):
        f.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}",
         "-f", str(root / "etc/ssh/ssh_host_ed25519_key")])
    sshd_config = SSHD_CONFIG
    if _sshd_knows(root, "PerSourcePenaltyExemptList"):
        # OpenSSH 9.8+ blocks a source address after failed or aborted connections. Every
        # connection of the lab machine (deploy, tests, status probes) comes from the gateway.
        sshd_config += f"PerSourcePenaltyExemptList {lab.gateway}/32\n"
    _write(root, "/etc/ssh/sshd_config.d/10-kubeha-lab.conf", sshd_config)
    chroot = ["chroot", str(root)]
    run([*chroot, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user])
    run([*chroot, "usermod", "--password", "*", user])  # no password; not "locked" for sshd
    run([*chroot, "usermod", "--password", "*", "root"])
    ssh_dir = root / "home" / user / ".ssh"
    _write(root, f"/home/{user}/.ssh/authorized_keys", pubkey.strip() + "\n", 0o600)
    ssh_dir.chmod(0o700)
    run([*chroot, "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"])
    _write(root, f"/etc/sudoers.d/90-kubeha-lab-{user}", f"{user} ALL=(ALL) NOPASSWD:ALL\n", 0o440)

    # apt: the machine's mirror through the lab's proxy; no other way out.
    _write(root, "/etc/apt/sources.list.d/debian.sources", _sources(lab.suite, mirror))
    _write(
        root,
        "/etc/apt/apt.conf.d/01kubeha-lab-proxy",
        f'Acquire::http::Proxy "http://{lab.gateway}:{paths.APT_PROXY_PORT}";\n',
    )

    # PID 1 wrapper and the values it shows for kubelet's sysctls.
    _write(root, INIT_PATH, INIT_SCRIPT, 0o755)
    _write(root, "/etc/kubeha-lab/sysctl-values", "".join(f"{k} {v}\n" for k, v in KUBELET_SYSCTLS.items()))
    # A small journal: 7 hosts on one machine.
    _write(root, "/etc/systemd/journald.conf.d/kubeha-lab.conf", "[Journal]\nSystemMaxUse=64M\nRuntimeMaxUse=32M\n")


def _sshd_knows(root: Path, option: str) -> bool:
    for binary in ("usr/sbin/sshd", "usr/lib/openssh/sshd-session"):
        try:
            if option.lower().encode() in (root / binary).read_bytes().lower():
                return True
        except OSError:
            pass
    return False


def builtin_modules() -> list[str]:
    """Module names whose feature is built into the running kernel (CONFIG_X=y)."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            config = {l.split("=", 1)[0] for l in f if l.rstrip().endswith("=y")}
    except OSError:
        config = None
    names = []
    for name, (_dir, sym) in MODULE_CONFIG.items():
        if config is not None:
            if sym in config:
                names.append(name)
        elif Path(f"/sys/module/{name}").exists():
            names.append(name)
    return names


def prepare_runtime(host: Host) -> None:
    """What depends on the running kernel, redone before each boot: modules.builtin for the
    kernel release so `modprobe overlay` etc. succeed (no module is ever loaded)."""
    root = machine_dir(host.name)
    release = os.uname().release
    moddir = root / "lib/modules" / release
    names = builtin_modules()
    text = "".join(f"kernel/{MODULE_CONFIG[n][0]}/{n}.ko\n" for n in names)
    marker = moddir / "modules.builtin"
    if marker.exists() and marker.read_text() == text and (moddir / "modules.dep.bin").exists():
        return
    moddir.mkdir(parents=True, exist_ok=True)
    marker.write_text(text)
    (moddir / "modules.order").write_text("")
    run(["chroot", str(root), "depmod", "-a", release])


def machine_size(name: str) -> int:
    cp = run(["du", "-sb", str(machine_dir(name))], check=False)
    try:
        return int(cp.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def remove_machine(name: str) -> None:
    for d in (machine_dir(name), paths.MACHINES / f".{name}.building"):
        if d.exists():
            _rmtree(d)
