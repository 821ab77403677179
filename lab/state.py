"""What the lab has built on this machine: /var/lib/kubeha-lab/state.json.

Written before `up` creates anything and updated as it goes, so `down` can remove exactly
what was made, even after a crash."""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager

from . import paths

VERSION = 1


def load() -> dict | None:
    try:
        st = json.loads(paths.STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(st, dict) or st.get("version") != VERSION:
        return None
    return st


def save(st: dict) -> None:
    paths.STATE_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.STATE_DIR, 0o755)
    tmp = paths.STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(st, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, paths.STATE_FILE)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextmanager
def lock():
    """One lab command that changes things at a time."""
    paths.LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
