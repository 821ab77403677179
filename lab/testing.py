"""pytest fixtures for tests that need the running lab (the lab's own and the deploy's).

Import them once, in the top conftest.py of the tests:

    from lab.testing import lab, lab_session  # noqa: F401  (fixtures)

Each conftest.py that imports them defines fixtures of its own: two session fixtures in one
test session would each take the lock below, and the second would wait for the first.

`lab_session` (session scope) brings the lab up once (`python3 -m lab up`, reusing a lab
that is already up) and takes it down at the end of the session unless KUBEHA_LAB_KEEP=1.
Test sessions on one machine take turns: the session fixture holds /run/lock/kubeha-lab-tests.lock
while it uses the lab and waits up to $KUBEHA_LAB_WAIT seconds (default 1200) for it, then skips.
`lab` (function scope) hands out the same LabHandle after making sure the lab is still up and
healthy (a test may have stopped or cut a host, or taken the lab down). Both skip the test
when the machine cannot run the lab (see skip_reason()).
The cluster file is $KUBEHA_CLUSTER, else lab/clusters/ha.yaml.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import config, paths
from .config import Host, LabConfig


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    for cmd in ("systemd-nspawn", "ip", "iptables"):
        if shutil.which(cmd) is None:
            return f"the lab needs {cmd}"
    return None


class LabHandle:
    def __init__(self, cluster_file: Path):
        self.cluster_file = Path(cluster_file)
        self.config: LabConfig = config.load(self.cluster_file)

    # ---- the command line -------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 900, cluster: Path | None = None):
        """python3 -m lab ARGS --cluster FILE; stdout and stderr captured (text)."""
        argv = [sys.executable, "-B", "-m", "lab", *args, "--cluster", str(cluster or self.cluster_file)]
        if args and args[0] == "ssh":  # ssh's remainder must stay last
            argv = [sys.executable, "-B", "-m", "lab", "--cluster", str(cluster or self.cluster_file), *args]
        cp = subprocess.run(
            argv,
            cwd=str(paths.REPO_ROOT),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        if check and cp.returncode != 0:
            raise AssertionError(
                f"lab {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"
            )
        return cp

    def status(self) -> dict:
        cp = self.cli("status", "--json", check=False, timeout=120)
        return json.loads(cp.stdout)

    def healthy(self) -> bool:
        s = self.status()
        return (
            s.get("lab") == self.config.name
            and s.get("status") == "ready"
            and all(v["pid"] and v["listening"] for v in s["services"].values())
            and all(h["machine"] == "running" and h["link"] == "up" and h["ssh"] for h in s["hosts"])
        )

    def up(self):
        return self.cli("up")

    def ensure_up(self) -> None:
        if not self.healthy():
            self.up()

    def down(self):
        return self.cli("down")

    # ---- hosts ------------------------------------------------------------------------------

    @property
    def hosts(self) -> tuple[Host, ...]:
        return self.config.hosts

    def host(self, name: str) -> Host:
        return self.config.host(name)

    def ssh_argv(self, host: Host | str) -> list[str]:
        """ssh as the lab user, strict host key checking against the lab's known_hosts."""
        from .machines import ssh_argv

        h = self.host(host) if isinstance(host, str) else host
        return ssh_argv(self.config, h)

    def ssh(self, host: Host | str, command: str, check: bool = True, timeout: float = 120):
        cp = subprocess.run(
            [*self.ssh_argv(host), command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and cp.returncode != 0:
            name = host if isinstance(host, str) else host.name
            raise AssertionError(f"{name}: {command!r} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        return cp

    def sudo(self, host: Host | str, command: str, **kw):
        return self.ssh(host, "sudo -n sh -c " + shlex.quote(command), **kw)


def _cluster_file() -> Path:
    return config.default_cluster_file()


SESSION_LOCK = Path("/run/lock/kubeha-lab-tests.lock")


def _take_session_lock(wait: float):
    """An exclusive lock for one test session (file removed on release). None on time-out."""
    deadline = time.monotonic() + wait
    SESSION_LOCK.parent.mkdir(parents=True, exist_ok=True)
    try:
        holder = SESSION_LOCK.read_text().strip()
    except FileNotFoundError:
        holder = ""
    if holder == str(os.getpid()):
        raise RuntimeError(f"this test session already holds {SESSION_LOCK}: the lab fixtures are defined "
                           "twice (import them only in tests/conftest.py)")
    while True:
        f = open(SESSION_LOCK, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(2)
            continue
        try:
            same = os.stat(SESSION_LOCK).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file an earlier holder removed meanwhile
            f.truncate(0)
            f.write(f"{os.getpid()}\n")
            f.flush()
            return f
        f.close()


def _release_session_lock(f) -> None:
    try:
        SESSION_LOCK.unlink()
    except FileNotFoundError:
        pass
    f.close()


@pytest.fixture(scope="session")
def lab_session():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    wait = float(os.environ.get("KUBEHA_LAB_WAIT", "1200"))
    lock = _take_session_lock(wait)
    if lock is None:
        pytest.skip(f"the lab is in use by another test session ({SESSION_LOCK}) for over {wait:.0f}s")
    try:
        handle = LabHandle(_cluster_file())
        handle.ensure_up()
        yield handle
        if os.environ.get("KUBEHA_LAB_KEEP") != "1":
            handle.down()
    finally:
        _release_session_lock(lock)


@pytest.fixture
def lab(lab_session):
    lab_session.ensure_up()
    return lab_session
