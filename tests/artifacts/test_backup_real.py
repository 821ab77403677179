"""Snapshots and the restore against real etcd: three members on loopback addresses of this
machine (tests/artifacts/test_etcd_real.py's LocalMembers, bootstrapped by the etcd stage's own
operations), with the release's etcdctl and etcdutl. Skipped without the built release.
Nothing leaves loopback.

The snapshot script is the one the deploy renders (templates/kubeha-etcd-backup.sh.j2), run
here with sh on every member, its directory a temporary one. The restore runs the commands of
the restore's plan (cluster/backup.py RestorePlan) on every member, then starts them exactly as
their units would; the etcd stage's operations must then find nothing to do. What cannot run
here is kubeadm's static pod (stacked etcd) and the Kubernetes side: the e2e drills do those.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest
from test_etcd_real import ADDRESSES, ALL, cluster_health, local_members

from cluster import backup, etcd
from operations import etcd as ops

pytestmark = pytest.mark.artifacts

KEEP = 2
KEYS, BATCH, VALUE_BYTES = 1000, 100, 10_000  # about 10 MB of data: figures worth reading


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    with local_members(tmp_path_factory.mktemp("backup-real"), **{"backup.keep": KEEP}) as local:
        for name in ADDRESSES:
            local.run_op(ops.decide_bootstrap, name)
        local.execute_together({n: local.commands(ops.start, n, applied="v1") for n in ADDRESSES})
        healthy, output = cluster_health(local)
        assert healthy == ALL, output
        for first in range(0, KEYS, BATCH):
            puts = "".join(f'put /registry/k{i:05d} "{"v" * VALUE_BYTES}"\n' for i in range(first, first + BATCH))
            # one transaction of BATCH puts: no compares, the puts, no failure requests
            done = subprocess.run(["sh", "-c", local.etcd("cp1").etcdctl(local.etcd("cp1").endpoints, "txn")],
                                  input=f"\n{puts}\n\n", capture_output=True, text=True,
                                  env={**os.environ, "PATH": f"{local.bin_dir}:{os.environ['PATH']}"})
            assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stderr
        yield local


def layout_of(members, name):
    """Member `name`'s layout here: its own data and PKI dirs; no etcd user to own the data."""
    seen = members.etcd(name)
    return etcd.EtcdLayout("external", seen.data_dir, owner=None, manifest=None, **seen.tls)


def snapshot_dir(members, name):
    directory = members.root / name / "snapshots"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def run_script(members, name, **knobs):
    """The member's snapshot script as the deploy renders it (its directory a temporary one)."""
    cluster = members.cluster
    if knobs:
        settings = {**cluster.settings, "backup": SimpleNamespace(**{**vars(cluster.backup), **knobs})}
        cluster = dataclasses.replace(cluster, settings=settings)
    script = backup.snapshot_script(cluster, backup.member(cluster, name), layout_of(members, name),
                                    str(members.bin_dir))
    script = script.replace(backup.SNAPSHOT_DIR, str(snapshot_dir(members, name)))
    started = time.monotonic()
    result = members.sh(script, check=False)
    return result, time.monotonic() - started


def snapshots(members):
    """{member: sorted snapshot names in its directory}."""
    return {name: sorted(p.stem for p in snapshot_dir(members, name).glob("*.db")) for name in ADDRESSES}


def leader(members):
    status = json.loads(members.etcdctl("cp1", "endpoint status --cluster -w json").stdout)
    leader_id = status[0]["Status"]["leader"]
    return next(name for name, address in ADDRESSES.items()
                for entry in status if entry["Status"]["header"]["member_id"] == leader_id
                and entry["Endpoint"] == f"https://{address}:2379")


FIGURES = {}


def test_every_member_runs_the_script_and_only_the_leader_takes_a_snapshot(members):
    boss = leader(members)
    for name in ADDRESSES:
        result, seconds = run_script(members, name)
        assert result.returncode == 0, result.stderr
        if name == boss:
            FIGURES["snapshot seconds"] = seconds
            assert "kubeha-etcd-backup: saved " in result.stdout
        else:
            assert result.stdout.strip() == f"kubeha-etcd-backup: {name} is not the leader: the leader takes the snapshot"
    found = snapshots(members)
    assert [len(found[n]) for n in ADDRESSES] == [1 if n == boss else 0 for n in ADDRESSES], found
    (name,) = found[boss]
    assert backup.parse_name(name)[0::2] == ("etcd-real", boss)
    directory = snapshot_dir(members, boss)
    db, meta = directory / f"{name}.db", directory / f"{name}.json"
    assert oct(db.stat().st_mode & 0o777) == oct(meta.stat().st_mode & 0o777) == "0o600"
    snapshot = backup.Snapshot.from_json(meta.read_text())
    assert (snapshot.name, snapshot.cluster, snapshot.member, snapshot.etcd_version) == (name, "etcd-real", boss, "3.6.14")
    assert snapshot.size == db.stat().st_size and snapshot.sha256 == backup.file_sha256(db)
    assert backup.snapshot_problem(snapshot, name, "etcd-real", db.stat().st_size, backup.file_sha256(db)) is None
    status = json.loads(members.sh(f"etcdutl snapshot status {db} -w json").stdout)
    assert status["revision"] == snapshot.revision and status["totalKey"] >= KEYS
    FIGURES["snapshot bytes"] = snapshot.size
    assert not list(directory.glob(".*"))  # no partial file left behind


def test_retention_keeps_the_newest_and_a_full_disk_is_refused(members):
    boss = leader(members)
    for _ in range(KEEP + 1):
        time.sleep(1.1)  # names are to the second
        result, _ = run_script(members, boss)
        assert result.returncode == 0, result.stderr
    found = snapshots(members)[boss]
    assert len(found) == KEEP and "pruned" in result.stdout
    assert all(os.path.exists(snapshot_dir(members, boss) / f"{n}.json") for n in found)
    assert len(list(snapshot_dir(members, boss).glob("*.json"))) == KEEP  # pruned with their snapshots

    time.sleep(1.1)
    result, _ = run_script(members, boss, min_free_mb=10 ** 9)
    assert result.returncode == 1 and "refused:" in result.stderr and "KiB free" in result.stderr
    assert snapshots(members)[boss] == found


def restore_all(members, snapshot, token, wiped):
    """What the restore does on every member, here: its plan's commands (the snapshot where
    the members keep it), then every member started as its unit would start it."""
    for name in ADDRESSES:
        members.stop(name)
    for name in wiped:  # their data is gone for good
        shutil.rmtree(members.root / name / "data" / "member")
    started = time.monotonic()
    for name in ADDRESSES:
        if name != snapshot.member:  # the restore's upload
            shutil.copy(snapshot_dir(members, snapshot.member) / f"{snapshot.name}.db", snapshot_dir(members, name))
        plan = backup.RestorePlan(snapshot, token, etcd.members(members.cluster), layout_of(members, name))
        for command in plan.restore_commands(name):
            members.sh(command.replace(backup.SNAPSHOT_DIR, str(snapshot_dir(members, name))))
    restored = time.monotonic()
    for name in ADDRESSES:
        members.start(name)
    for name in ADDRESSES:
        seen = members.etcd(name)
        members.sh(ops._wait_healthy(seen, seen.member(name)))
    return restored - started, time.monotonic() - restored


def get(members, key, *flags):
    result = members.etcdctl("cp1", f"get {key} {' '.join(flags)} -w json")
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("wiped", [("cp2", "cp3"), ("cp1", "cp2", "cp3")], ids=["two of three wiped", "all three wiped"])
def test_the_restore_brings_back_the_snapshot_with_its_revision_bumped_and_the_etcd_stage_accepts_it(members, wiped):
    boss = leader(members)
    name = snapshots(members)[boss][-1]
    snapshot = backup.Snapshot.from_json((snapshot_dir(members, boss) / f"{name}.json").read_text())
    assert members.etcdctl("cp1", "put /registry/after-the-snapshot yes").returncode == 0
    before_id = json.loads(members.etcdctl("cp1", "member list -w json").stdout)["header"]["cluster_id"]
    token = f"etcd-real-restored-{len(wiped)}"
    aside_before = {m: set((members.root / m / "data").glob("member.before-restore-*")) for m in ADDRESSES}
    # an interrupted attempt left a restore dir: it is that attempt's, and goes
    (members.root / "cp1" / "data" / "restore.kubeha" / "member").mkdir(parents=True)

    restore_seconds, start_seconds = restore_all(members, snapshot, token, wiped)
    FIGURES[f"restore seconds ({len(wiped)} wiped)"] = restore_seconds
    FIGURES[f"start until healthy seconds ({len(wiped)} wiped)"] = start_seconds

    healthy, output = cluster_health(members)
    assert healthy == ALL, output
    listed = json.loads(members.etcdctl("cp1", "member list -w json").stdout)
    assert sorted(m["name"] for m in listed["members"]) == ["cp1", "cp2", "cp3"]
    assert listed["header"]["cluster_id"] != before_id  # a new cluster, from the new token
    code, found = get(members, "/registry/k00042")
    assert code == 0 and '"count":1' in found
    code, found = get(members, "/registry/after-the-snapshot")
    assert code == 0 and '"count":1' not in found  # written after the snapshot: gone
    revision = json.loads(members.etcdctl("cp1", "endpoint status -w json").stdout)[0]["Status"]["header"]["revision"]
    assert revision >= snapshot.revision + backup.BUMP_REVISION
    # every revision up to the bump is compacted: a watch from before it ends, informers list again
    code, found = get(members, "/registry/k00042", f"--rev={snapshot.revision}")
    assert code != 0 and "required revision has been compacted" in found
    # the old data is kept beside the new, the half-made restore dir is gone
    for member in ADDRESSES:
        data = members.root / member / "data"
        aside = set(data.glob("member.before-restore-*")) - aside_before[member]
        assert len(aside) == (0 if member in wiped else 1), (member, aside)
        assert not (data / "restore.kubeha").exists()
    # the deploy's etcd stage finds nothing to do on the restored members
    for member in ADDRESSES:
        assert members.run_op(ops.decide_bootstrap, member) == []
        assert members.run_op(ops.start, member, applied="v1") == []
        assert members.run_op(ops.join, member, applied="v1") == []
        assert members.run_op(ops.restart_changed, member, applied="v1") == []

    # and the next snapshot works: one, on the leader, past the bump
    time.sleep(1.1)
    for member in ADDRESSES:
        result, _ = run_script(members, member)
        assert result.returncode == 0, result.stderr
    newest = backup.newest([n for names in snapshots(members).values() for n in names], "etcd-real")
    holder = backup.parse_name(newest)[2]
    after = backup.Snapshot.from_json((snapshot_dir(members, holder) / f"{newest}.json").read_text())
    assert after.revision >= snapshot.revision + backup.BUMP_REVISION


def test_figures(members):
    """Printed for the README (`pytest -s`): this machine, loopback, about 10 MB of data."""
    print("\n" + json.dumps(FIGURES, indent=2))
    assert {"snapshot seconds", "snapshot bytes", "restore seconds (2 wiped)"} <= set(FIGURES)
