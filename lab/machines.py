"""Hosts as systemd-nspawn machines: start (in their own cgroups), stop, find, run inside."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from . import paths, rootfs
from .config import Host, LabConfig
from .proc import LabError, children, cmdline, read_pidfile, run, spawn, terminate

SYSCALL_FILTER = "@keyring bpf @mount @privileged"  # what containerd/runc need inside
# Moves the shell into the host's cgroups (one per hierarchy), then becomes nspawn.
CGROUP_SH = (
    'set -e; IFS=:; for f in $KUBEHA_LAB_CGROUP_PROCS; do echo $$ > "$f"; done; '
    'unset KUBEHA_LAB_CGROUP_PROCS; exec "$@"'
)


def pidfile(name: str) -> Path:
    return paths.RUN / f"machine-{name}.pid"


def logfile(name: str) -> Path:
    return paths.RUN / f"machine-{name}.log"


def nspawn_pid(name: str) -> int | None:
    pid = read_pidfile(pidfile(name))
    if pid is None:
        return None
    argv = cmdline(pid)
    # right after spawn() it may still be the shell that moves itself into the cgroups
    if "systemd-nspawn" not in (os.path.basename(a) for a in argv) or f"--machine={name}" not in argv:
        return None
    return pid


def leader_pid(name: str) -> int | None:
    """The host's PID 1, as a pid of the machine."""
    pid = nspawn_pid(name)
    if pid is None:
        return None
    for child in children(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                return child
    return None


# ---- cgroups ------------------------------------------------------------------------------

_GENERIC_OPTS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "xattr", "clone_children"}


def _cgroup_mounts() -> list[tuple[str, str, frozenset[str]]]:
    """(mount point, 'cgroup'|'cgroup2', controllers) of the machine's cgroup hierarchies."""
    found = []
    seen = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _source, superopts = (post.split() + ["", ""])[:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mnt = pre.split()[4]
        ctrls = frozenset(
            o for o in superopts.split(",") if o not in _GENERIC_OPTS and ("=" not in o or o.startswith("name="))
        )
        key = (fstype, ctrls)
        if key in seen:
            continue
        seen.add(key)
        found.append((mnt, fstype, ctrls))
    return found


def _own_cgroups() -> dict:
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        own["" if hid == "0" else frozenset(ctrls.split(","))] = path
    return own


def cgroup_dirs(name: str) -> list[Path]:
    """<hierarchy>/<this process's cgroup>/kubeha-lab/NAME for every hierarchy."""
    own = _own_cgroups()
    dirs = []
    for mnt, fstype, ctrls in _cgroup_mounts():
        cur = own.get("" if fstype == "cgroup2" else ctrls)
        if cur is None:
            continue
        dirs.append(Path(mnt) / cur.lstrip("/") / paths.CGROUP_GROUP / name)
    return dirs


def _make_cgroup(d: Path) -> None:
    for p in (d.parent, d):
        p.mkdir(exist_ok=True)
        for f in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until copied from parent
            target = p / f
            if target.exists() and not target.read_text().strip():
                target.write_text((p.parent / f).read_text())


def cgroup_pids(d: Path) -> set[int]:
    """Every process in cgroup D or below it."""
    pids: set[int] = set()
    if not d.is_dir():
        return pids
    for root, _dirs, files in os.walk(d):
        if "cgroup.procs" in files:
            try:
                pids |= {int(x) for x in Path(root, "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
    return pids


def kill_cgroups(dirs: list[Path], grace: float = 10.0) -> set[int]:
    """End every process left in DIRS (e.g. a host whose nspawn died: its systemd lives on,
    re-parented to PID 1). A host's PID 1 gets the poweroff signal first, then all SIGKILL.
    Returns the pids that were found."""
    found: set[int] = set()
    for d in dirs:
        found |= cgroup_pids(d)
    if not found:
        return found
    for pid in found:
        try:
            nspid = [l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("NSpid:")]
            if nspid and nspid[0].split()[-1] == "1" and len(nspid[0].split()) > 2:
                os.kill(pid, signal.SIGRTMIN + 3)
        except (OSError, ProcessLookupError):
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(cgroup_pids(d) for d in dirs):
        time.sleep(0.2)
    for _ in range(50):
        left: set[int] = set()
        for d in dirs:
            left |= cgroup_pids(d)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return found


def remove_cgroup_tree(d: Path) -> bool:
    """rmdir D and everything below it (cgroup dirs only hold virtual files). True if gone."""
    if not d.is_dir():
        return True
    for root, dirs, _files in os.walk(d, topdown=False):
        for sub in dirs:
            try:
                os.rmdir(os.path.join(root, sub))
            except OSError:
                pass
    try:
        os.rmdir(d)
    except OSError:
        return False
    parent = d.parent
    if parent.name == paths.CGROUP_GROUP:
        try:
            os.rmdir(parent)  # the lab's group, once its last host is gone
        except OSError:
            pass
    return True


# ---- start / stop -----------------------------------------------------------------------


def start(lab: LabConfig, host: Host, known_cgroups: list[str] | None = None) -> tuple[int, list[str]]:
    """Boot HOST. Returns (nspawn pid, cgroup dirs it runs in). KNOWN_CGROUPS: cgroup dirs
    earlier boots used (maybe from another session's cgroup)."""
    if nspawn_pid(host.name) is not None:
        raise LabError(f"{host.name} is already running")
    root = rootfs.machine_dir(host.name)
    if not (root / rootfs.MACHINE_MARKER).exists():
        raise LabError(f"{host.name} has no machine ({root}); run `python3 -m lab up`")
    netns = f"/run/netns/{host.netns}"
    if not os.path.exists(netns):
        raise LabError(f"{host.name} has no network namespace {netns}; run `python3 -m lab up`")
    rootfs.prepare_runtime(host)
    dirs = cgroup_dirs(host.name)
    # Leftovers of an earlier boot: a crashed nspawn leaves the host's systemd running, which
    # must not share the root file system with a new one.
    old = host_cgroups(host.name, known_cgroups)
    if kill_cgroups(old, grace=5.0):
        time.sleep(0.2)
    for d in old:
        remove_cgroup_tree(d)
    for d in dirs:
        _make_cgroup(d)
    argv = [
        "/bin/sh", "-c", CGROUP_SH, "kubeha-lab-nspawn",
        "systemd-nspawn",
        f"--directory={root}",
        f"--machine={host.name}",
        "--register=no",
        "--keep-unit",
        "--console=pipe",
        f"--network-namespace-path={netns}",
        "--capability=all",
        f"--system-call-filter={SYSCALL_FILTER}",
        "--bind=/dev/kmsg",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        "--kill-signal=SIGRTMIN+3",
        rootfs.INIT_PATH,
    ]
    env = {
        "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1",
        "KUBEHA_LAB_CGROUP_PROCS": ":".join(str(d / "cgroup.procs") for d in dirs),
    }
    logfile(host.name).unlink(missing_ok=True)
    pid = spawn(argv, pidfile(host.name), logfile(host.name), env=env)
    return pid, [str(d) for d in dirs]


def wait_started(name: str, timeout: float = 20.0) -> None:
    """Until the host's PID 1 runs. Its process is first the shell that moves itself into the
    host's cgroups and then becomes nspawn: on a loaded machine that takes a while, and the
    shell is not a machine that stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pidfile(pidfile(name)) is None:
            break  # the process is gone
        if leader_pid(name) is not None:
            return
        time.sleep(0.05)
    raise LabError(f"{name} did not start (log {logfile(name)}):\n{log_tail(name)}")


def log_tail(name: str, lines: int = 20) -> str:
    log = logfile(name)
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def stop(name: str, known_cgroups: list[str] | None = None, timeout: float = 30.0) -> bool:
    """Clean poweroff (SIGTERM to nspawn), SIGKILL after TIMEOUT. True if it was running."""
    return bool(stop_many([name], known_cgroups, timeout))


def host_cgroups(name: str, known_cgroups: list[str] | None) -> list[Path]:
    return [Path(d) for d in (known_cgroups or []) if Path(d).name == name] + cgroup_dirs(name)


def stop_many(names: list[str], known_cgroups: list[str] | None = None, timeout: float = 30.0) -> list[str]:
    """Power off several hosts at once, then end anything left in their cgroups.
    Returns the names that were running."""
    pids = {n: nspawn_pid(n) for n in names}
    running = {n: p for n, p in pids.items() if p is not None}
    for p in running.values():
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for n, p in running.items():
        terminate(p, 0, timeout=max(0.5, deadline - time.monotonic()))
    for n in names:
        pidfile(n).unlink(missing_ok=True)
        kill_cgroups(host_cgroups(n, known_cgroups), grace=5.0)
    return list(running)


# ---- inside a host ---------------------------------------------------------------------------


def exec_argv(name: str, argv: list[str]) -> list[str]:
    leader = leader_pid(name)
    if leader is None:
        raise LabError(f"{name} is not running")
    return [
        "nsenter", f"--target={leader}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
        "--root", "--wd", "--",
        "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        *argv,
    ]


def exec_in(name: str, argv: list[str], check: bool = True, timeout: float = 120):
    """Run ARGV as root inside host NAME (no network needed), return the CompletedProcess."""
    return run(exec_argv(name, argv), check=check, timeout=timeout)


def kill_service(name: str, service: str) -> int:
    """SIGKILL the main process of systemd SERVICE inside host NAME; returns its pid there."""
    cp = exec_in(name, ["systemctl", "show", "--property=MainPID", "--value", service], check=False)
    main = cp.stdout.strip()
    if cp.returncode != 0 or not main.isdigit():
        raise LabError(f"{name}: cannot read the main pid of {service}: {cp.stdout.strip()}")
    if main == "0":
        raise LabError(f"{name}: {service} has no running main process")
    exec_in(name, ["kill", "-KILL", main])
    return int(main)


# ---- ssh ------------------------------------------------------------------------------------


def ssh_argv(lab: LabConfig, host: Host, tty: bool = False) -> list[str]:
    return [
        "ssh", "-F", "/dev/null",
        "-i", lab.ssh_key,
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={lab.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        "-o", "LogLevel=ERROR",
        # From the bridge's address only: with no bridge, ssh fails before sending anything.
        "-o", f"BindInterface={paths.BRIDGE}",
        *(["-t"] if tty else []),
        f"{lab.ssh_user}@{host.address}",
    ]


def port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    """Can a TCP connection to a lab address be made? The socket is bound to the lab's
    bridge, so with no bridge nothing is sent (never out through another route)."""
    s = socket.socket()
    try:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, paths.BRIDGE.encode())
        except OSError:
            return False
        s.settimeout(timeout)
        s.connect((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_ssh(lab: LabConfig, hosts: list[Host], timeout: float = 90.0, progress=None) -> None:
    """Until `ssh USER@ADDRESS true` works (strict host key checking) on every host."""
    t0 = time.monotonic()
    left = list(hosts)
    while left:
        for h in list(left):
            if nspawn_pid(h.name) is None:
                raise LabError(f"{h.name} stopped while booting (log {logfile(h.name)}):\n{log_tail(h.name)}")
            if not port_open(h.address, 22, 0.5):
                continue
            cp = run([*ssh_argv(lab, h), "true"], check=False, timeout=20)
            if cp.returncode == 0:
                left.remove(h)
                if progress:
                    progress("ssh", h.name, f"ssh ok (waited {time.monotonic() - t0:.1f}s)")
        if left:
            if time.monotonic() - t0 > timeout:
                raise LabError(f"no ssh after {timeout:.0f}s on: {', '.join(h.name for h in left)}")
            time.sleep(0.2)
