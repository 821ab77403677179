"""Operations of the etcd snapshots (tasks/etcd_backup.py, backup.py) and of the restore
(restore.py). Each decides from the hosts' state when it runs, so a converged host gets no
command, `--dry` shows what a run would do, and an interrupted restore resumes where it stopped.

Snapshots are secrets: they are never printed, and they cross SSH only through a directory
that only the login user can read (pyinfra's sudo transfers would stage them world-readable in
/tmp).
"""

import os
import shlex
import uuid
from datetime import datetime, timezone
from functools import lru_cache

from gevent.lock import RLock
from pyinfra import host, logger, state
from pyinfra.api import FileDownloadCommand, FileUploadCommand, FunctionCommand, operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.state import BaseStateCallback
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import Which
from pyinfra.facts.systemd import SystemdStatus

from cluster import backup, etcd, paths
from cluster.context import node as node_of, pyinfra_host
from facts.api import ApiHealthz
from facts.backup import SnapshotFile, Snapshots, StaticPod
from facts.etcd import EtcdHealth
from facts.services import UnitInstalled
from operations.failure import fail, retry

APISERVER = "kube-apiserver"
RESTARTED_PODS = ("kube-controller-manager", "kube-scheduler")


def member_hosts(cluster):
    """{member name: pyinfra host} of the cluster's etcd members."""
    return {m.name: pyinfra_host(m.name) for m in etcd.members(cluster)}


def _reachable(hosts):
    return {name: h for name, h in hosts.items() if h in state.active_hosts}


def _snapshots_on_members(cluster):
    """{member name: Snapshots fact} of the reachable members, read now."""
    return {name: h.get_fact(Snapshots, directory=backup.SNAPSHOT_DIR)
            for name, h in _reachable(member_hosts(cluster)).items()}


def _newest_on_members(cluster):
    """(name, member holding it, its entry in the Snapshots fact) of the cluster's newest snapshot."""
    held = _snapshots_on_members(cluster)
    name = backup.newest([n for found in held.values() for n in found], cluster.name)
    if name is None:
        return None, None, None
    holder = next(member for member, found in held.items() if name in found)
    return name, holder, held[holder][name]


_ONCE = {}  # what is read once per run: {(what, cluster name): value}
_ONCE_LOCK = RLock()


def _once(what, cluster, read):
    # pyinfra runs a deploy file for all hosts at once, in greenlets that switch whenever a
    # fact is read: without the lock every host read it for itself. Found on the lab, where the
    # three members each restored with a cluster token of their own (taken a second apart)
    # and formed three clusters of one.
    key = (what, cluster.name)
    with _ONCE_LOCK:
        if key not in _ONCE:
            _ONCE[key] = read()
    return _ONCE[key]


def newest_snapshot_name(cluster):
    """The cluster's newest snapshot on the members when this run started (read once)."""
    return _once("newest", cluster, lambda: _newest_on_members(cluster)[0])


def _warn(message):
    logger.warning(f"{host.print_prefix}{message}")


# ---- moving a snapshot between this machine and a host -------------------------------------

def _private_dir():
    """Commands making a fresh directory on the host that only the login user can read (sudo
    runs as root; $SUDO_USER is the login user), and its path."""
    path = f"/var/tmp/kubeha-transfer-{uuid.uuid4().hex}"
    return f'mkdir -m 0700 {path} && chown "${{SUDO_USER:-root}}" {path}', path


def _keep_local(partial, snapshot, cluster):
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
    for old in backup.to_prune(names, cluster.name, cluster.backup.keep):
        for suffix in (".db", ".json"):
            (directory / f"{old}{suffix}").unlink(missing_ok=True)


def _make_local_dir(directory):
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)


def _download(cluster, snapshot):
    """The commands copying this host's snapshot into the local state directory."""
    directory = backup.local_dir(cluster)
    partial = directory / f".{snapshot.name}.db.part"
    make, private = _private_dir()
    staged = f"{private}/{snapshot.name}.db"
    yield FunctionCommand(_make_local_dir, (directory,), {})
    yield f'{make} && install -m 0600 -o "${{SUDO_USER:-root}}" {backup.SNAPSHOT_DIR}/{snapshot.name}.db {staged}'
    yield FileDownloadCommand(staged, str(partial), _sudo=False)  # the login user reads its own copy
    yield f"rm -rf {private}"
    yield FunctionCommand(_keep_local, (partial, snapshot, cluster), {})


# ---- snapshots ---------------------------------------------------------------------------------

@operation()
def take_snapshot(node):
    """Run the snapshot service now on this member (every member at once: the leader takes it)."""
    if not host.get_fact(UnitInstalled, unit=backup.SERVICE):
        yield from fail(f"{backup.SERVICE} is not installed on {node.name}: run deploy.py first "
                        "(its etcd backups stage installs it)")
        return
    yield f"systemctl start {backup.SERVICE}"


@operation()
def fetch_newest(cluster, node, taken_now=False, before=None):
    """Copy the cluster's newest snapshot into the local state directory (run on every member
    at once: the member that holds it fetches it, the others have nothing to do).

    + taken_now: backup.py has just taken one: it must be newer than `before` (the newest
      before it), and what it is gets logged
    """
    if taken_now and not state.is_executing:
        host.noop("fetches the snapshot the leader takes now")
        return
    name, holder, entry = _newest_on_members(cluster)
    if name is None or (taken_now and name == before):
        if taken_now:
            yield from fail("no member took a snapshot: see `journalctl -u kubeha-etcd-backup` on the members")
        else:
            host.noop("no member holds a snapshot yet")
        return
    if holder != node.name:
        host.noop(f"the newest snapshot, {name}, is on {holder}")
        return
    try:
        snapshot = backup.Snapshot.from_json(entry["metadata"])
    except ValueError as error:
        _warn(f"the metadata of {name} is unreadable ({error}): not fetched")
        host.noop(f"{name} is not fetched")
        return
    local = backup.local_dir(cluster) / f"{name}.db"
    if taken_now:
        logger.info(f"{host.print_prefix}etcd snapshot {snapshot.describe()}; kept in {local}")
    if local.is_file() and backup.file_sha256(local) == snapshot.sha256:
        host.noop(f"{name} is in the local state already")
        return
    yield from _download(cluster, snapshot)


# ---- the restore: what it restores, or why not ---------------------------------------------

def _involved(cluster, roles):
    return bool({"control_plane", "worker"} & set(roles)) or etcd.runs_member(cluster, roles)


def _refuse(reason):
    raise PyinfraError(f"restore refused, nothing was changed: {reason}")


def _available(cluster, on_members):
    local = sorted(p.stem for p in backup.local_dir(cluster).glob("*.json"))
    held = sorted({n for found in on_members.values() for n in found})
    return (f"local: {', '.join(local) or 'none'} (in {backup.local_dir(cluster)}); on the members: "
            f"{', '.join(held) or 'none'}")


def _source(cluster, name, on_members):
    """(metadata text, size, sha256, member holding it or None for the local copy) of `name`."""
    metadata, path = backup.local_snapshot(cluster, name)
    if metadata is not None:
        if not path.is_file():
            return metadata, None, None, None
        return metadata, path.stat().st_size, backup.file_sha256(path), None
    holder = next((member for member, found in on_members.items() if name in found), None)
    if holder is None:
        _refuse(f"there is no snapshot {name}; {_available(cluster, on_members)}")
    found = pyinfra_host(holder).get_fact(SnapshotFile, path=f"{backup.SNAPSHOT_DIR}/{name}.db") or {}
    return on_members[holder][name]["metadata"], found.get("size"), found.get("sha256"), holder


def restore_plan(cluster):
    """The restore restore.py was asked for: (RestorePlan, the member to fetch the snapshot from
    or None when it is in the local state). Decided once per run, before any operation, from
    the hosts' state; raises PyinfraError saying why when the restore must not happen, so a
    refused restore touches nothing."""
    return _once("restore", cluster, lambda: _read_restore_plan(cluster))


def _read_restore_plan(this):
    request = backup.restore_request()
    hosts = member_hosts(this)
    reachable = _reachable(hosts)
    on_members = {name: h.get_fact(Snapshots, directory=backup.SNAPSHOT_DIR) for name, h in reachable.items()}
    if not request.snapshot:
        _refuse(f"name the snapshot to restore: {backup.RESTORE_ENV}=NAME pyinfra inventory.py restore.py; "
                f"{_available(this, on_members)}")
    name = request.snapshot
    metadata, size, sha256, holder = _source(this, name, on_members)
    try:
        snapshot = backup.Snapshot.from_json(metadata)
    except ValueError as error:
        _refuse(f"the metadata of {name} is unreadable: {error}")
    problem = backup.snapshot_problem(snapshot, name, this.name, size, sha256)
    if problem:
        _refuse(f"{name}: {problem}")
    down = sorted(set(hosts) - set(reachable))
    if down:
        _refuse(f"every member restores the snapshot, and {', '.join(down)} cannot be reached")
    for member, h in hosts.items():
        for tool in ("etcdctl", "etcdutl"):
            if not h.get_fact(Which, command=tool):
                _refuse(f"{tool} is not installed on {member}: run deploy.py first (its etcd backups stage "
                        "installs it)")
    first = next(iter(hosts.values()))
    layout = etcd.layout(this)
    _check_manifests(this, layout)
    records = {h: backup.parse_record(h.get_fact(FileContents, path=backup.RECORD))
               for h in state.active_hosts if _involved(this, node_of(h).roles)}
    under_way = {r["token"] for r in records.values() if r.get("snapshot") == name and r.get("token")}
    others = sorted({r["snapshot"] for r in records.values() if r.get("snapshot") not in (None, name)})
    if others and not request.confirmed:
        _refuse(f"a restore of {', '.join(others)} was interrupted: run restore.py with that snapshot to finish "
                f"it, or set {backup.CONFIRM_ENV}=yes to restore {name} instead")
    if not under_way:
        members = etcd.members(this)
        health = first.get_fact(EtcdHealth, endpoints=[m.client_url for m in members], **layout.tls) or {}
        healthy = sum(bool(ok) for ok in health.values())
        if healthy > len(members) // 2 and not request.confirmed:
            _refuse(f"etcd is healthy ({healthy} of {len(members)} members): a restore would lose everything "
                    f"written since {snapshot.taken_at}; set {backup.CONFIRM_ENV}=yes to restore anyway")
    token = min(under_way) if under_way else backup.restore_token(this.name, datetime.now(timezone.utc))
    plan = backup.RestorePlan(snapshot=snapshot, token=token, members=etcd.members(this), layout=layout)
    logger.info("--> The restore" + (" (resumed)" if under_way else ""))
    for line in plan.describe():
        logger.info(f"    {line}")
    return plan, holder


STEP = "Restore: "  # how restore.py names its steps


class _StopAfterAnyFailure(BaseStateCallback):
    def __init__(self, failed_before):
        self.failed_before = set(failed_before)  # e.g. a worker that was down from the start

    def operation_end(self, state, op_hash):
        # (an included file's operations are named "file | name")
        if not any(name.rsplit(" | ", 1)[-1].startswith(STEP) for name in state.get_op_meta(op_hash).names):
            return
        failed = sorted(h.name for h in set(state.failed_hosts) - self.failed_before)
        if failed:
            raise PyinfraError(f"the restore stopped: a step failed on {', '.join(failed)}; once that is "
                               "mended, run restore.py again and it goes on from there")


@lru_cache(maxsize=None)
def stop_after_any_failure():
    """End the run as soon as a restore step (an operation named "Restore: ...") has failed on
    any host, so that no member goes on with the restore alone. (pyinfra's FAIL_PERCENT cannot
    do it: a deploy file's config is reset.)"""
    state.add_callback_handler(_StopAfterAnyFailure(state.failed_hosts))


def _check_manifests(cluster, layout):
    """Every static pod the restore stops and starts again must have its manifest somewhere."""
    for plane in cluster.control_planes:
        h = pyinfra_host(plane.name)
        pods = [etcd.static_pod_manifest(APISERVER)] + ([layout.manifest] if layout.manifest else [])
        for manifest in pods:
            found = h.get_fact(StaticPod, manifest=manifest, aside=backup.aside(manifest))
            if not (found["manifest"] or found["aside"]):
                _refuse(f"{manifest} is missing on {plane.name}: the restore cannot start that pod again")


# ---- the restore's steps, in order; every host runs every step (most have nothing to do) ----
#
# Each step runs on every host, so that pyinfra runs them in this order everywhere, and each
# decides from the host's state: what is done already is not done again.

def _record():
    return backup.parse_record(host.get_fact(FileContents, path=backup.RECORD))


def _is_member(cluster, node):
    return etcd.runs_member(cluster, node.roles)


def _restored_everywhere(cluster):
    return all(backup.parse_record(h.get_fact(FileContents, path=backup.RECORD)).get("restored") == "yes"
               for h in member_hosts(cluster).values())


def _pods_to_stop(cluster, node):
    """The static pods of this host a restore stops: the apiserver of a control plane, and
    kubeadm's etcd of a stacked member."""
    manifests = []
    if "control_plane" in node.roles:
        manifests.append(etcd.static_pod_manifest(APISERVER))
    if _is_member(cluster, node) and cluster.etcd.topology == "stacked":
        manifests.append(etcd.static_pod_manifest("etcd"))
    return manifests


def _kubelet_runs():
    # the kubelet is what stops and starts static pods
    return "systemctl is-active -q kubelet || systemctl start kubelet"


KUBELET_GRACE = 30  # seconds the kubelet gets to stop a static pod whose manifest went


def _wait_gone(manifest):
    """The pod gone. The kubelet stops a static pod whose manifest went only once it has heard
    from the API since it started (it cleans up orphaned pods after all its sources synced):
    with etcd's majority lost that can be never (seen on the lab: kubelets started again on
    wiped stacked members kept their apiservers running). So when the kubelet has not stopped
    it in KUBELET_GRACE seconds, the pod's sandbox is stopped through the runtime; with the
    manifest gone the kubelet does not start it again."""
    container = manifest.rsplit("/", 1)[1].removesuffix(".yaml")
    running = f"crictl ps -q --name '^{container}$' | grep -q ."
    return (f"n=0; while {running} && [ $n -lt {KUBELET_GRACE} ]; do sleep 1; n=$((n+1)); done; "
            f"if {running}; then pods=$(crictl pods -q --namespace kube-system --name '^{container}-'); "
            f'[ -z "$pods" ] || crictl stopp $pods >/dev/null; fi; '
            + retry(f"! {running}", f"{container} still runs after its manifest was moved out"))


@operation()
def fetch_for_restore(cluster, node, plan, holder):
    """The snapshot copied from the member that holds it into the local state directory."""
    if node.name != holder:
        host.noop(f"the snapshot is fetched from {holder}")
        return
    local = backup.local_dir(cluster) / f"{plan.snapshot.name}.db"
    if local.is_file() and backup.file_sha256(local) == plan.snapshot.sha256:
        host.noop(f"{plan.snapshot.name} is in the local state already")
        return
    yield from _download(cluster, plan.snapshot)


@operation()
def upload_snapshot(cluster, node, plan):
    """The same snapshot, with its metadata, on every member."""
    if not _is_member(cluster, node):
        host.noop("not an etcd member")
        return
    found = host.get_fact(SnapshotFile, path=plan.snapshot_path)
    if found and found["sha256"] == plan.snapshot.sha256:
        host.noop(f"{plan.snapshot.name} is here")
        return
    name = plan.snapshot.name
    local_db, local_meta = (backup.local_dir(cluster) / f"{name}{suffix}" for suffix in (".db", ".json"))
    part = f"{backup.SNAPSHOT_DIR}/.{name}.db.part"
    make, private = _private_dir()
    yield f"mkdir -p -m 0700 {backup.SNAPSHOT_DIR} && {make}"
    yield FileUploadCommand(str(local_db), part, remote_temp_filename=f"{private}/{name}.db")
    yield f"rm -rf {private} && chmod 0600 {part} && mv {part} {plan.snapshot_path}"
    meta = f"{backup.SNAPSHOT_DIR}/{name}.json"
    yield FileUploadCommand(str(local_meta), meta, remote_temp_filename=host.get_temp_filename(f"{name}.json"))
    yield f"chmod 0600 {meta}"


@operation()
def check_snapshot(cluster, node, plan):
    """The member's copy is whole (sha256) and etcdutl reads it as a snapshot of that revision."""
    if not _is_member(cluster, node):
        host.noop("not an etcd member")
        return
    found = host.get_fact(SnapshotFile, path=plan.snapshot_path)
    if found is None and not state.is_executing:
        host.noop("checked once it is uploaded")
        return
    found = found or {}
    problem = (backup.snapshot_problem(plan.snapshot, plan.snapshot.name, cluster.name, found.get("size"),
                                       found.get("sha256"))
               or backup.status_problem(plan.snapshot, found.get("status")))
    if problem:
        yield from fail(f"the copy of {plan.snapshot.name} on {node.name}: {problem}")
        return
    host.noop(f"{plan.snapshot.name} checked: revision {plan.snapshot.revision}")


@operation()
def begin(cluster, node, plan):
    """A record of the restore on every host it works on, for a resumed run to find."""
    if not _involved(cluster, node.roles):
        host.noop("no part in the restore")
        return
    record = _record()
    if (record.get("snapshot"), record.get("token")) == (plan.snapshot.name, plan.token):
        host.noop(f"the restore of {plan.snapshot.name} is under way")
        return
    lines = " ".join(shlex.quote(line) for line in backup.record_lines(plan.snapshot.name, plan.token))
    yield f"mkdir -p {backup.RECORD.rsplit('/', 1)[0]} && printf '%s\\n' {lines} > {backup.RECORD}"


@operation()
def stop_static_pods(cluster, node, plan):
    """Every apiserver stopped (and kubeadm's etcd, stacked): manifests out of the kubelet's
    directory, then the containers gone. Not once every member is restored."""
    manifests = _pods_to_stop(cluster, node)
    if not manifests:
        host.noop("no apiserver or etcd pod here")
        return
    if _restored_everywhere(cluster):
        host.noop("every member is restored: the pods stay as they are")
        return
    found = {m: host.get_fact(StaticPod, manifest=m, aside=backup.aside(m)) for m in manifests}
    if not any(f["manifest"] or f["running"] for f in found.values()):
        host.noop("stopped")
        return
    for manifest, where in found.items():
        if where["manifest"]:
            yield f"mv -f {manifest} {backup.aside(manifest)}"
    yield _kubelet_runs()
    for manifest in manifests:
        yield _wait_gone(manifest)


@operation()
def stop_etcd(cluster, node, plan):
    """External etcd stopped on every member that is still to be restored."""
    if not _is_member(cluster, node) or plan.layout.topology != "external":
        host.noop("no etcd service here" if not _is_member(cluster, node) else "kubeadm's etcd stopped with the static pods")
        return
    if _record().get("restored") == "yes":
        host.noop(f"{node.name} is restored")
        return
    if not host.get_fact(SystemdStatus, services="etcd.service").get("etcd.service"):
        host.noop("etcd is stopped")
        return
    yield "systemctl stop etcd"


@operation()
def restore_member(cluster, node, plan):
    """This member's data restored from the snapshot into a new data dir, which then takes the
    place of the old one (moved aside, kept)."""
    if not _is_member(cluster, node):
        host.noop("not an etcd member")
        return
    if _record().get("restored") == "yes":
        host.noop(f"{node.name} is restored")
        return
    for command in plan.restore_commands(node.name):
        yield command
    yield f"echo restored=yes >> {backup.RECORD}"


@operation()
def start_etcd(cluster, node, plan):
    """etcd started on every member at once (they need each other for a quorum), then healthy."""
    if not _is_member(cluster, node):
        host.noop("not an etcd member")
        return
    me = plan.member(node.name)
    if host.get_fact(EtcdHealth, endpoints=[me.client_url], **plan.layout.tls).get(me.client_url):
        host.noop(f"etcd is healthy on {me.name}")
        return
    if plan.layout.topology == "external":
        yield "systemctl start --no-block etcd"
    else:
        where = host.get_fact(StaticPod, manifest=plan.layout.manifest, aside=backup.aside(plan.layout.manifest))
        if not where["manifest"]:
            yield f"mv {backup.aside(plan.layout.manifest)} {plan.layout.manifest}"
        yield _kubelet_runs()
        yield _etcd_container_started()
    healthy = plan.layout.etcdctl([me.client_url], "endpoint health >/dev/null 2>&1")
    # what the kubelet and etcd say, should a stacked member not come back
    diagnose = None
    if plan.layout.topology == "stacked":
        diagnose = ("crictl ps -a --name '^etcd$'; id=$(crictl ps -a -q --name '^etcd$' | head -1); "
                    '[ -z "$id" ] || crictl logs --tail 20 "$id"')
    yield retry(healthy, f"etcd member {me.name} did not become healthy after the restore", diagnose=diagnose)


def _etcd_container_started():
    """kubeadm's etcd container running within a minute of its manifest's return; else the
    kubelet is restarted once, to read its manifests afresh. Once, on the lab, a member whose
    etcd had been stopped twice under it did not come back healthy in two minutes (the
    second drill of losing every member); alone, the same drill passed."""
    running = "crictl ps -q --name '^etcd$' | grep -q ."
    return (f"n=0; while ! {running} && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done; "
            f"{running} || systemctl restart kubelet")


@operation()
def start_apiserver(cluster, node, plan):
    """Every apiserver started again, answering on its own address."""
    if "control_plane" not in node.roles:
        host.noop("not a control plane")
        return
    manifest = etcd.static_pod_manifest(APISERVER)
    url = f"https://{node.address}:{paths.APISERVER_PORT}"
    where = host.get_fact(StaticPod, manifest=manifest, aside=backup.aside(manifest))
    if where["manifest"] and host.get_fact(ApiHealthz, url=url):
        host.noop("the apiserver answers")
        return
    if not where["manifest"]:
        yield f"mv {backup.aside(manifest)} {manifest}"
    yield _kubelet_runs()
    yield retry(f"curl -sk --max-time 5 {url}/healthz | grep -qx ok",
                 f"the apiserver of {node.name} does not answer after the restore", attempts=90)


@operation()
def restart_components(cluster, node, plan):
    """Controller-managers, schedulers and every kubelet restarted, so that nothing keeps state
    from before the restore."""
    if not {"control_plane", "worker"} & set(node.roles):
        host.noop("no kubelet here")
        return
    if _record().get("restarted") == "yes":
        host.noop("restarted after the restore")
        return
    if "control_plane" in node.roles:
        names = "|".join(RESTARTED_PODS)
        # the kubelet starts a static pod's stopped container again at once
        yield f"ids=$(crictl ps -q --name '^({names})$'); if [ -n \"$ids\" ]; then crictl stop $ids >/dev/null; fi"
    yield "systemctl restart kubelet"
    yield f"echo restarted=yes >> {backup.RECORD}"


@operation()
def finish(cluster, node, plan):
    """The restore's record removed: the restore is done."""
    if not _involved(cluster, node.roles):
        host.noop("no part in the restore")
        return
    if state.is_executing and not _record():  # a plan runs before `begin` has written it
        host.noop("no restore record")
        return
    yield f"rm -f {backup.RECORD}"
