"""Operations of the etcd snapshots (tasks/etcd_backup.py, backup.py). Each decides from the
hosts' state when it runs, so a converged host gets no command and `--dry` shows what a run
would do.

Snapshots are secrets: they are never printed, and they cross SSH only through a directory
that only the login user can read (pyinfra's sudo transfers would stage them world-readable in
/tmp).
"""

import os
import uuid
from functools import lru_cache

from pyinfra import host, logger, state
from pyinfra.api import FileDownloadCommand, FunctionCommand, operation
from pyinfra.api.exceptions import PyinfraError

from cluster import backup
from cluster.context import cluster, node, pyinfra_host
from facts.backup import Snapshots
from facts.host import UnitInstalled
from operations.failure import fail


def member_hosts():
    """{member name: pyinfra host} of the cluster's etcd members."""
    return {m.name: pyinfra_host(m.name) for m in backup.members(cluster())}


def _reachable(hosts):
    return {name: h for name, h in hosts.items() if h in state.active_hosts}


def _snapshots_on_members():
    """{member name: Snapshots fact} of the reachable members, read now."""
    return {name: h.get_fact(Snapshots, directory=backup.SNAPSHOT_DIR)
            for name, h in _reachable(member_hosts()).items()}


def _newest_on_members():
    """(name, member holding it, its entry in the Snapshots fact) of the cluster's newest snapshot."""
    held = _snapshots_on_members()
    name = backup.newest([n for found in held.values() for n in found], cluster().name)
    if name is None:
        return None, None, None
    holder = next(member for member, found in held.items() if name in found)
    return name, holder, held[holder][name]


@lru_cache(maxsize=None)
def newest_snapshot_name():
    """The cluster's newest snapshot on the members when this run started (read once)."""
    return _newest_on_members()[0]


def _warn(message):
    logger.warning(f"{host.print_prefix}{message}")


# ---- moving a snapshot between this machine and a host -------------------------------------

def _private_dir():
    """Commands making a fresh directory on the host that only the login user can read (sudo
    runs as root; $SUDO_USER is the login user), and its path."""
    path = f"/var/tmp/kubeha-transfer-{uuid.uuid4().hex}"
    return f'mkdir -m 0700 {path} && chown "${{SUDO_USER:-root}}" {path}', path


def _keep_local(partial, snapshot):
    """Runs here once the download is done: checks it against its metadata, then keeps it
    (0600) with its metadata and deletes the local snapshots beyond the retention."""
    if backup.file_sha256(partial) != snapshot.sha256:
        partial.unlink()
        raise PyinfraError(f"the copy of {snapshot.name} fetched from {host.name} does not have the sha256 "
                           "recorded when it was taken: not kept")
    directory = partial.parent
    partial.chmod(0o600)
    partial.replace(directory / f"{snapshot.name}.db")
    meta = directory / f"{snapshot.name}.json"
    meta.unlink(missing_ok=True)
    with os.fdopen(os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(snapshot.to_json())
    names = [p.stem for p in directory.glob("*.db")]
    for old in backup.to_prune(names, cluster().name, cluster().backup.keep):
        for suffix in (".db", ".json"):
            (directory / f"{old}{suffix}").unlink(missing_ok=True)


def _make_local_dir(directory):
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)


def _download(snapshot):
    """The commands copying this host's snapshot into the local state directory."""
    directory = backup.local_dir(cluster())
    partial = directory / f".{snapshot.name}.db.part"
    make, private = _private_dir()
    staged = f"{private}/{snapshot.name}.db"
    yield FunctionCommand(_make_local_dir, (directory,), {})
    yield f'{make} && install -m 0600 -o "${{SUDO_USER:-root}}" {backup.SNAPSHOT_DIR}/{snapshot.name}.db {staged}'
    yield FileDownloadCommand(staged, str(partial), _sudo=False)  # the login user reads its own copy
    yield f"rm -rf {private}"
    yield FunctionCommand(_keep_local, (partial, snapshot), {})


# ---- snapshots ---------------------------------------------------------------------------------

@operation()
def take_snapshot():
    """Run the snapshot service now on this member (every member at once: the leader takes it)."""
    if not host.get_fact(UnitInstalled, unit=backup.SERVICE):
        yield from fail(f"{backup.SERVICE} is not installed on {node().name}: run deploy.py first "
                        "(its etcd backups stage installs it)")
        return
    yield f"systemctl start {backup.SERVICE}"


@operation()
def fetch_newest(taken_now=False, before=None):
    """Copy the cluster's newest snapshot into the local state directory (run on every member
    at once: the member that holds it fetches it, the others have nothing to do).

    + taken_now: backup.py has just taken one: it must be newer than `before` (the newest
      before it), and what it is gets logged
    """
    if taken_now and not state.is_executing:
        host.noop("fetches the snapshot the leader takes now")
        return
    name, holder, entry = _newest_on_members()
    if name is None or (taken_now and name == before):
        if taken_now:
            yield from fail("no member took a snapshot: see `journalctl -u kubeha-etcd-backup` on the members")
        else:
            host.noop("no member holds a snapshot yet")
        return
    if holder != node().name:
        host.noop(f"the newest snapshot, {name}, is on {holder}")
        return
    try:
        snapshot = backup.Snapshot.from_json(entry["metadata"])
    except ValueError as error:
        _warn(f"the metadata of {name} is unreadable ({error}): not fetched")
        host.noop(f"{name} is not fetched")
        return
    local = backup.local_dir(cluster()) / f"{name}.db"
    if taken_now:
        logger.info(f"{host.print_prefix}etcd snapshot {snapshot.describe()}; kept in {local}")
    if local.is_file() and backup.file_sha256(local) == snapshot.sha256:
        host.noop(f"{name} is in the local state already")
        return
    yield from _download(snapshot)
