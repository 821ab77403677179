"""etcd backups: which hosts take snapshots, how snapshots are named, kept and described, what
makes one fit for a restore, and the restore's plan. Nothing here touches a host.

A snapshot is `NAME.db` (`etcdctl snapshot save`) with `NAME.json` beside it, its metadata:
cluster, member, time, revision, etcd version, size and sha256. NAME is
`<cluster>-etcd-<UTC time>-<member>`, so names sort by time within a cluster. Snapshots live in
SNAPSHOT_DIR on the members (root only) and in the local state directory (`local_dir`).

A restore follows etcd's procedure for Kubernetes: every member restores the same snapshot into a
new data dir, with a new cluster token and the revision bumped past anything a client has seen
(`--bump-revision` + `--mark-compacted`, so every watch ends and informers list again). The new
data is then moved to where the member's etcd reads it and the old data moved aside beside it,
never deleted: the unit (external) and kubeadm's etcd.yaml (stacked) stay exactly as the deploy
and kubeadm wrote them, so a deploy after a restore has nothing to change and a later
`kubeadm upgrade` still finds the data where its configuration says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from cluster import etcd, paths
from cluster.model import Problem
from cluster.render import render

SNAPSHOT_DIR = "/var/lib/kubeha-etcd-snapshots"  # on every member: root only, never in the data dir
SCRIPT = f"{paths.SBIN_DIR}/kubeha-etcd-backup"
SERVICE = "kubeha-etcd-backup.service"
TIMER = "kubeha-etcd-backup.timer"
UNIT_DIR = "/etc/systemd/system"
RECORD = f"{paths.KUBEADM_DIR}/restore-in-progress"  # on every host a restore works on, until it is done
BUMP_REVISION = 1_000_000_000  # etcd's advice for Kubernetes: past any revision a client has seen
RESTORE_ENV = "KUBEHA_RESTORE_SNAPSHOT"
CONFIRM_ENV = "KUBEHA_RESTORE_CONFIRM"

NAME_RE = re.compile(r"^(?P<cluster>[a-z0-9][a-z0-9-]*)-etcd-(?P<stamp>\d{8}T\d{6}Z)-(?P<member>[a-z0-9][a-z0-9-]*)$")
SCHEDULE_RE = re.compile(r"^[A-Za-z0-9*:/,.~ -]+$")  # what systemd.time(7) calendar events are made of


# ---- the members: every host that runs one takes snapshots (cluster/etcd.py member_nodes) --------

def member(cluster, name):
    return next(m for m in etcd.members(cluster) if m.name == name)


def aside(manifest):
    """Where a restore keeps a static pod's manifest while the pod must not run: out of the
    kubelet's manifests directory, so the kubelet stops the pod."""
    return f"{manifest.rsplit('/', 2)[0]}/{manifest.rsplit('/', 1)[1]}.kubeha-restore"


def snapshot_script(cluster, member, layout, bin_dir):
    """The snapshot script of one member (templates/kubeha-etcd-backup.sh.j2)."""
    return render("kubeha-etcd-backup.sh.j2", cluster=cluster.name, member=member.name, snapshot_dir=SNAPSHOT_DIR,
                  prefix=name_prefix(cluster.name), keep=cluster.backup.keep, min_free_mb=cluster.backup.min_free_mb,
                  bin_dir=bin_dir, endpoint=member.client_url, **layout.tls)


def snapshot_units(cluster, member):
    """{unit file name: content} of the snapshot service and its timer."""
    return {
        SERVICE: render("kubeha-etcd-backup.service.j2", cluster=cluster.name, member=member.name, script=SCRIPT),
        TIMER: render("kubeha-etcd-backup.timer.j2", cluster=cluster.name, schedule=cluster.backup.schedule),
    }


# ---- names and retention -----------------------------------------------------------------------

def name_prefix(cluster_name):
    return f"{cluster_name}-etcd-"


def parse_name(name):
    """(cluster, time, member) of a snapshot name, None for any other name."""
    match = NAME_RE.match(name)
    if not match:
        return None
    when = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return match["cluster"], when, match["member"]


def _by_time(names, cluster_name):
    mine = [n for n in names if (parse_name(n) or ("",))[0] == cluster_name]
    return sorted(mine, key=lambda n: parse_name(n)[1:])


def newest(names, cluster_name):
    """The newest of this cluster's snapshot names, None when there is none."""
    ordered = _by_time(names, cluster_name)
    return ordered[-1] if ordered else None


def to_prune(names, cluster_name, keep):
    """This cluster's snapshot names beyond the `keep` newest, oldest first."""
    ordered = _by_time(names, cluster_name)
    return ordered[:-keep] if keep else ordered


LOCAL_DIR = "etcd-snapshots"  # in the cluster's state directory


def local_dir(cluster):
    """Where the deploy keeps the fetched snapshots: in the cluster's state directory (0700)."""
    return cluster.state_dir / LOCAL_DIR


# ---- metadata ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """A snapshot's metadata, as the snapshot script writes it beside the snapshot."""

    name: str
    cluster: str
    member: str
    taken_at: str
    revision: int
    etcd_version: str
    size: int
    sha256: str

    @classmethod
    def from_json(cls, text):
        """The metadata in `text`; raises ValueError saying what is wrong with it."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("is not a JSON object")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        values = {f.name: data[f.name] for f in fields(cls)}
        for key in ("revision", "size"):
            if isinstance(values[key], bool) or not isinstance(values[key], int):
                raise ValueError(f"{key} is not a number")
        if not re.fullmatch(r"[0-9a-f]{64}", str(values["sha256"])):
            raise ValueError("sha256 is not a sha256")
        return cls(**values)

    def to_json(self):
        return json.dumps(asdict(self)) + "\n"

    def describe(self):
        return (f"{self.name}: {self.size} bytes, revision {self.revision}, sha256 {self.sha256}, taken "
                f"{self.taken_at} on {self.member} (etcd {self.etcd_version})")


def snapshot_problem(snapshot, name, cluster_name, size, sha256):
    """Why the snapshot file `name` of `size` bytes with this sha256 cannot be restored, given
    its metadata (None: it can). `size` is None when the file is missing."""
    if snapshot.name != name:
        return f"its metadata describes another snapshot ({snapshot.name})"
    if snapshot.cluster != cluster_name:
        return f"it is a snapshot of the cluster {snapshot.cluster}, not of {cluster_name}"
    if size is None:
        return f"{name}.db is missing (only its metadata is there)"
    if size < snapshot.size:
        return f"it is truncated: {size} of {snapshot.size} bytes"
    if size != snapshot.size:
        return f"it has {size} bytes, its metadata says {snapshot.size}"
    if sha256 != snapshot.sha256:
        return "it is corrupt: its sha256 differs from the one recorded when it was taken"
    return None


def status_problem(snapshot, status):
    """Why `etcdutl snapshot status` (as facts/backup.py reads it) rules the snapshot out."""
    if not status:
        return "etcdutl cannot read it as an etcd snapshot"
    if status.get("revision") != snapshot.revision:
        return f"etcdutl reads revision {status.get('revision')}, its metadata says {snapshot.revision}"
    return None


# ---- the restore -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreRequest:
    snapshot: str | None
    confirmed: bool


def restore_request(environ=os.environ):
    """What the operator asked for: the snapshot's name and whether a healthy cluster may be
    restored (KUBEHA_RESTORE_SNAPSHOT, KUBEHA_RESTORE_CONFIRM=yes)."""
    return RestoreRequest(snapshot=(environ.get(RESTORE_ENV) or "").strip() or None,
                          confirmed=environ.get(CONFIRM_ENV, "").strip().lower() == "yes")


def restore_token(cluster_name, now):
    """A cluster token no earlier incarnation of this cluster had: a restore makes a new cluster."""
    return f"{cluster_name}-restored-{now.strftime('%Y%m%dT%H%M%SZ')}"


def parse_record(lines):
    """The restore record of a host (key=value lines), {} when there is none."""
    record = {}
    for line in lines or []:
        key, sep, value = line.strip().partition("=")
        if sep:
            record[key] = value
    return record


def record_lines(snapshot_name, token):
    return [f"# Managed by kubeha: a restore of {snapshot_name} is under way; restore.py resumes it.",
            f"snapshot={snapshot_name}", f"token={token}"]


@dataclass(frozen=True)
class RestorePlan:
    """The restore of one snapshot onto every member of one cluster."""

    snapshot: Snapshot
    token: str
    members: tuple
    layout: EtcdLayout

    @property
    def initial_cluster(self):
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def snapshot_path(self):
        return f"{SNAPSHOT_DIR}/{self.snapshot.name}.db"

    @property
    def restore_dir(self):
        # inside the data dir: the same file system, so the restored data is moved, not copied
        return f"{self.layout.data_dir}/restore.kubeha"

    def member(self, name):
        return next(m for m in self.members if m.name == name)

    def restore_commands(self, member_name):
        """What restores this member: a new data dir from the snapshot, then the swap."""
        me = self.member(member_name)
        data = shlex.quote(self.layout.data_dir)
        fresh = shlex.quote(self.restore_dir)
        commands = [
            # a restore dir left by an interrupted attempt is that attempt's output, never the old data
            f"rm -rf {fresh}",
            (f"etcdutl snapshot restore {shlex.quote(self.snapshot_path)} --name {shlex.quote(me.name)}"
             f" --data-dir {fresh} --initial-cluster {shlex.quote(self.initial_cluster)}"
             f" --initial-cluster-token {shlex.quote(self.token)}"
             f" --initial-advertise-peer-urls {shlex.quote(me.peer_url)}"
             f" --bump-revision {BUMP_REVISION} --mark-compacted"),
        ]
        if self.layout.owner:
            commands.append(f"chown -R {self.layout.owner}:{self.layout.owner} {fresh}")
        commands.append(
            f"if [ -e {data}/member ]; then mv {data}/member {data}/member.before-restore-$(date -u +%Y%m%dT%H%M%SZ); fi"
            f" && mv {fresh}/member {data}/member && rmdir {fresh}")
        return commands

    def describe(self):
        """The whole restore, step by step, for the plan's output."""
        names = ", ".join(m.name for m in self.members)
        if self.layout.topology == "external":
            stop_etcd, start_etcd = "systemctl stop etcd", "systemctl start etcd"
        else:
            stop_etcd = start_etcd = "kubeadm's etcd.yaml moved out of and back into the manifests"
        return [
            f"restore {self.snapshot.describe()}",
            f"members {names}; new cluster token {self.token}",
            "1. the snapshot on every member, checked (sha256, etcdutl snapshot status)",
            "2. every apiserver stopped: kube-apiserver.yaml moved out of the manifests",
            f"3. etcd stopped on every member ({stop_etcd})",
            f"4. on every member: etcdutl snapshot restore into {self.restore_dir} with --bump-revision "
            f"{BUMP_REVISION} --mark-compacted; {self.layout.data_dir}/member moved aside to "
            "member.before-restore-<time> (kept), the restored member put in its place",
            f"5. etcd started on every member ({start_etcd}), healthy",
            "6. every apiserver started again and answering",
            "7. controller-managers, schedulers and every kubelet restarted",
        ]


# ---- the cluster file --------------------------------------------------------------------------

def check_settings(cluster):
    """The backup knobs' problems, for the cluster file's validation."""
    problems = []
    backup = cluster.backup
    if not SCHEDULE_RE.fullmatch(backup.schedule or ""):
        problems.append(Problem("backup.schedule", "is not a systemd calendar event (see systemd.time(7), "
                                "e.g. '*-*-* 00/6:00:00' or 'daily')"))
    if backup.keep < 1:
        problems.append(Problem("backup.keep", "must keep at least one snapshot"))
    if backup.min_free_mb < 0:
        problems.append(Problem("backup.min_free_mb", "must not be negative"))
    return problems


def local_snapshot(cluster, name):
    """(metadata text or None, path of the snapshot file) of a snapshot in the local state."""
    directory = local_dir(cluster)
    metadata = directory / f"{name}.json"
    return (metadata.read_text() if metadata.is_file() else None), directory / f"{name}.db"


def file_sha256(path: Path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
