"""The machine's global sysctls (kernel.*, vm.*, fs.*), watched for the lab's lifetime.

Inside a host these are read-only (see rootfs.INIT_SCRIPT), but a process that mounts a fresh
procfs in a host (a privileged pod does) reaches the machine's real ones. So `up` records them
before it changes anything, `status` reports any that changed (other than the limits the lab
raises itself, capacity.py) and `down` puts them all back."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOTS = ("kernel", "vm", "fs")
# Values that move by themselves (counters, random numbers, state), never restored.
VOLATILE = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid$|kernel\.pty\.nr$|kernel\.tainted$|kernel\.sched_domain\."
    r"|kernel\.keys\.gc|kernel\..*count$|fs\.binfmt_misc\.|fs\.dentry-|fs\.inode-|fs\.file-nr$|fs\.aio-nr$"
    r"|fs\.quota\.|fs\.xfs\.|vm\.stat_refresh$|vm\.drop_caches$|vm\.compact_memory$)"
)


def snapshot() -> dict[str, str]:
    values: dict[str, str] = {}
    for root in ROOTS:
        base = Path("/proc/sys") / root
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                p = Path(dirpath) / f
                key = str(p.relative_to("/proc/sys")).replace("/", ".")
                if VOLATILE.match(key):
                    continue
                try:
                    if not p.stat().st_mode & 0o200:
                        continue
                    values[key] = p.read_text()
                except OSError:
                    continue
    return values


def changed(before: dict[str, str], ours: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """{key: (recorded, now)} of the values that moved since BEFORE was recorded, leaving out
    OURS ({key: value the lab itself set}, see capacity.py) while they still hold that value."""
    now = snapshot()
    ours = ours or {}
    return {
        k: (v, now[k])
        for k, v in before.items()
        if k in now and now[k] != v and now[k].strip() != ours.get(k)
    }


def restore(before: dict[str, str], keys) -> list[str]:
    """Write the recorded values of KEYS back and read them again; returns the keys that do
    not hold their recorded value afterwards."""
    failed = []
    for k in keys:
        path = Path("/proc/sys/" + k.replace(".", "/"))
        try:
            path.write_text(before[k])
            if path.read_text().split() != before[k].split():
                failed.append(k)
        except OSError:
            failed.append(k)
    return failed
