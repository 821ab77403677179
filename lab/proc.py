"""Running commands, and the long-lived processes the lab starts (found again by pid file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence


class LabError(Exception):
    """Something the lab cannot do; the message is for the user."""


class CommandError(LabError):
    def __init__(self, argv: Sequence[str], returncode: int, output: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"command failed ({returncode}): {' '.join(self.argv)}\n{tail}".rstrip())


def run(
    argv: Sequence[str],
    check: bool = True,
    input: str | None = None,
    env: dict | None = None,
    timeout: float | None = 600,
    cwd: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a command, capture its output (stdout and stderr together)."""
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        cp = subprocess.run(
            list(argv),
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout}s: {' '.join(argv)}") from None
    if check and cp.returncode != 0:
        raise CommandError(argv, cp.returncode, cp.stdout or "")
    return cp


def out(argv: Sequence[str], **kw) -> str:
    return run(argv, **kw).stdout


# ---- processes found again by pid file --------------------------------------------------


def _starttime(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime); the command name (field 2) may contain spaces: split after ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def write_pidfile(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid} {_starttime(pid) or 0}\n")
    os.replace(tmp, path)


def read_pidfile(path: Path) -> int | None:
    """The pid in the file if that very process (same start time) is still alive."""
    try:
        pid_s, start = path.read_text().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    st = _starttime(pid)
    if st is None or st != start:
        return None
    try:
        if Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0:
            return None
    except OSError:
        return None
    return pid


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def spawn(
    argv: Sequence[str],
    pidfile: Path,
    logfile: Path,
    env: dict | None = None,
    preexec: Callable[[], None] | None = None,
) -> int:
    """Start a process that outlives this command: own session, stdin from /dev/null,
    output to LOGFILE, pid (and start time, so a reused pid is never mistaken) in PIDFILE."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)

    def child_setup() -> None:
        os.setsid()
        if preexec is not None:
            preexec()

    with open(logfile, "ab") as log, open(os.devnull, "rb") as devnull:
        p = subprocess.Popen(
            list(argv),
            stdin=devnull,
            stdout=log,
            stderr=log,
            env=full_env,
            cwd="/",
            close_fds=True,
            preexec_fn=child_setup,
        )
    write_pidfile(pidfile, p.pid)
    # Popen keeps a handle to reap the child; this process exits soon and the child is
    # re-parented to PID 1, so nothing is left as a zombie.
    return p.pid


def terminate(pid: int, sig: int = signal.SIGTERM, timeout: float = 20.0, kill_after: bool = True) -> bool:
    """Signal PID and wait for it to go; SIGKILL after TIMEOUT. True if it is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    if wait_gone([pid], timeout):
        return True
    if kill_after:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        return wait_gone([pid], 5.0)
    return False


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left:
            return True
        # Reap our own children, if any of them are ours.
        for p in left:
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid: int) -> list[int]:
    return [p for p in all_pids() if ppid(p) == pid]


def is_root() -> bool:
    return os.geteuid() == 0


def python_argv(module: str, *args: str) -> list[str]:
    """argv running one of the lab's own modules with this interpreter, writing no byte-code."""
    return [sys.executable, "-B", "-m", module, *args]
