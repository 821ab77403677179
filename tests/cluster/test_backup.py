"""cluster/backup.py: which hosts take snapshots, names and retention, what makes a snapshot fit
for a restore, and the restore's plan for one and three members of both topologies."""

import json
import shlex
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
import yaml
from support import CLUSTER_FILES, cluster_copy, load, local_copy, shipped

from cluster import backup, etcd
from cluster.validation import validate

SHA = "a" * 64


def single_member(name, directory):
    """The cluster file with one control plane (and etcd member) and its workers."""
    source = local_copy(CLUSTER_FILES[name], directory)
    data = yaml.safe_load(source.read_text())
    first = next(h for h in data["hosts"] if "control_plane" in h["roles"])
    data["hosts"] = [h for h in data["hosts"] if h is first or "control_plane" not in h["roles"]]
    source.write_text(yaml.safe_dump(data))
    return load(source)


def snapshot(**changes):
    values = dict(name="lab-ha-etcd-20261122T060000Z-cp2", cluster="lab-ha", member="cp2",
                  taken_at="2026-11-22T06:00:00Z", revision=48211, etcd_version="3.6.14", size=5312544, sha256=SHA)
    return backup.Snapshot(**{**values, **changes})


@pytest.mark.parametrize(("name", "topology", "members"), [
    ("lab-ha", "external", ["cp1", "cp2", "cp3"]),
    ("topology-b", "external", ["cp1", "cp2", "cp3"]),
    ("topology-a", "stacked", ["k1", "k2", "k3"]),
])
def test_the_hosts_that_run_an_etcd_member_take_the_snapshots(name, topology, members):
    cluster = shipped(name)
    assert cluster.etcd.topology == topology
    assert [m.name for m in etcd.members(cluster)] == members
    takers = [h.name for h in cluster.hosts if etcd.runs_member(cluster, h.roles)]
    assert takers == members
    assert all(m.peer_url == f"https://{m.address}:2380" and m.client_url == f"https://{m.address}:2379"
               for m in etcd.members(cluster))


def test_stacked_members_are_the_control_planes_even_without_etcd_roles(tmp_path):
    source = local_copy(CLUSTER_FILES["topology-a"], tmp_path)
    data = yaml.safe_load(source.read_text())
    for entry in data["hosts"]:
        entry["roles"] = [r for r in entry["roles"] if r != "etcd"]
    source.write_text(yaml.safe_dump(data))
    assert [m.name for m in etcd.members(load(source))] == ["k1", "k2", "k3"]


def test_the_layouts_of_both_topologies():
    external = etcd.layout(SimpleNamespace(etcd=SimpleNamespace(topology="external")))
    assert (external.data_dir, external.owner, external.manifest) == ("/var/lib/kubeha-etcd", "etcd", None)
    assert external.tls == {"cacert": "/etc/etcd/pki/ca.crt", "cert": "/etc/etcd/pki/admin-client.crt",
                            "key": "/etc/etcd/pki/admin-client.key"}
    stacked = etcd.layout(SimpleNamespace(etcd=SimpleNamespace(topology="stacked")))
    assert (stacked.data_dir, stacked.owner) == ("/var/lib/etcd", None)
    assert stacked.manifest == "/etc/kubernetes/manifests/etcd.yaml"
    assert stacked.tls["cert"] == "/etc/kubernetes/pki/etcd/healthcheck-client.crt"
    # out of the kubelet's directory, so that the kubelet stops the pod
    assert backup.aside(stacked.manifest) == "/etc/kubernetes/etcd.yaml.kubeha-restore"
    command = stacked.etcdctl(["https://10.0.0.1:2379"], "endpoint health")
    assert shlex.split(command)[:5] == ["etcdctl", "--endpoints=https://10.0.0.1:2379",
                                        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                                        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                                        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key"]


def test_names_sort_by_time_and_other_names_are_ignored():
    names = ["lab-ha-etcd-20261122T060000Z-cp2", "lab-ha-etcd-20261121T180000Z-cp1",
             "lab-ha-etcd-20261122T000000Z-cp3", "lab-compact-etcd-20261123T000000Z-k1", "notes",
             "lab-ha-etcd-2026-11-22-cp1"]
    assert backup.parse_name(names[0]) == ("lab-ha", datetime(2026, 11, 22, 6, tzinfo=timezone.utc), "cp2")
    assert backup.parse_name("notes") is None
    assert backup.newest(names, "lab-ha") == "lab-ha-etcd-20261122T060000Z-cp2"
    assert backup.newest(names, "lab-compact") == "lab-compact-etcd-20261123T000000Z-k1"
    assert backup.newest(["notes"], "lab-ha") is None
    assert backup.name_prefix("lab-ha") == "lab-ha-etcd-"
    # a cluster whose name ends like another's prefix is still told apart
    assert backup.newest(["a-etcd-b-etcd-20261122T060000Z-m1"], "a") is None


@pytest.mark.parametrize(("keep", "pruned"), [
    (1, ["lab-ha-etcd-20261121T180000Z-cp1", "lab-ha-etcd-20261122T000000Z-cp3"]),
    (2, ["lab-ha-etcd-20261121T180000Z-cp1"]),
    (3, []),
    (8, []),
])
def test_retention_prunes_the_oldest_of_this_cluster_only(keep, pruned):
    names = ["lab-ha-etcd-20261122T060000Z-cp2", "lab-ha-etcd-20261121T180000Z-cp1",
             "lab-ha-etcd-20261122T000000Z-cp3", "lab-compact-etcd-20200101T000000Z-k1"]
    assert backup.to_prune(names, "lab-ha", keep) == pruned


def test_metadata_is_read_and_checked():
    text = snapshot().to_json()
    assert backup.Snapshot.from_json(text) == snapshot()
    assert "5312544 bytes, revision 48211" in snapshot().describe()
    for broken, why in [("[]", "JSON object"), ('{"name": "x"}', "lacks cluster"),
                        (text.replace("48211", '"48211"'), "revision is not a number"),
                        (text.replace(SHA, "abc"), "sha256 is not")]:
        with pytest.raises(ValueError, match=why):
            backup.Snapshot.from_json(broken)
    with pytest.raises(ValueError):
        backup.Snapshot.from_json("{not json")


@pytest.mark.parametrize(("size", "sha256", "cluster", "expected"), [
    (5312544, SHA, "lab-ha", None),
    (None, None, "lab-ha", "is missing"),
    (4096, SHA, "lab-ha", "truncated: 4096 of 5312544 bytes"),
    (5312545, SHA, "lab-ha", "has 5312545 bytes, its metadata says 5312544"),
    (5312544, "b" * 64, "lab-ha", "corrupt"),
    (5312544, SHA, "lab-compact", "a snapshot of the cluster lab-ha, not of lab-compact"),
])
def test_a_snapshot_is_refused_when_missing_truncated_corrupt_or_of_another_cluster(size, sha256, cluster, expected):
    problem = backup.snapshot_problem(snapshot(), snapshot().name, cluster, size, sha256)
    assert problem is None if expected is None else expected in problem


def test_a_snapshot_whose_metadata_names_another_is_refused():
    assert "another snapshot" in backup.snapshot_problem(snapshot(), "lab-ha-etcd-20200101T000000Z-cp1", "lab-ha",
                                                         5312544, SHA)


def test_etcdutl_must_read_the_revision_the_metadata_records():
    assert backup.status_problem(snapshot(), {"revision": 48211}) is None
    assert "cannot read" in backup.status_problem(snapshot(), None)
    assert "revision 7" in backup.status_problem(snapshot(), {"revision": 7})


def test_the_request_comes_from_the_environment():
    assert backup.restore_request({}) == backup.RestoreRequest(None, False)
    assert backup.restore_request({"KUBEHA_RESTORE_SNAPSHOT": " x ", "KUBEHA_RESTORE_CONFIRM": "yes"}) == \
        backup.RestoreRequest("x", True)
    assert not backup.restore_request({"KUBEHA_RESTORE_SNAPSHOT": "x", "KUBEHA_RESTORE_CONFIRM": "y"}).confirmed


def test_a_restore_record_is_read_back():
    lines = backup.record_lines("lab-ha-etcd-20261122T060000Z-cp2", "lab-ha-restored-20261122T070000Z")
    record = backup.parse_record(lines + ["restored=yes"])
    assert record == {"snapshot": "lab-ha-etcd-20261122T060000Z-cp2", "token": "lab-ha-restored-20261122T070000Z",
                      "restored": "yes"}
    assert backup.parse_record(None) == {}


def restore_args(command):
    words = shlex.split(command)
    return words[:3], dict(zip(words[4::2], words[5::2])) | {"path": words[3]}


@pytest.mark.parametrize(("name", "members"), [("lab-ha", 3), ("topology-a", 3), ("lab-ha", 1), ("topology-a", 1)])
def test_the_restore_plan_restores_every_member_from_the_same_snapshot_with_a_new_token(name, members, tmp_path):
    cluster = shipped(name) if members == 3 else single_member(name, tmp_path)
    layout = etcd.layout(cluster)
    token = backup.restore_token(cluster.name, datetime(2026, 11, 22, 7, tzinfo=timezone.utc))
    assert token == f"{cluster.name}-restored-20261122T070000Z" and token != cluster.name
    plan = backup.RestorePlan(snapshot(cluster=cluster.name), token, etcd.members(cluster), layout)
    assert len(plan.members) == members
    expected_cluster = ",".join(f"{m.name}=https://{m.address}:2380" for m in etcd.members(cluster))
    assert plan.initial_cluster == expected_cluster
    data_dir = "/var/lib/kubeha-etcd" if cluster.etcd.topology == "external" else "/var/lib/etcd"
    for member in plan.members:
        commands = plan.restore_commands(member.name)
        assert commands[0] == f"rm -rf {data_dir}/restore.kubeha"
        program, flags = restore_args(commands[1])
        assert program == ["etcdutl", "snapshot", "restore"]
        assert flags == {"path": f"/var/lib/kubeha-etcd-snapshots/{snapshot().name}.db", "--name": member.name,
                         "--data-dir": f"{data_dir}/restore.kubeha", "--initial-cluster": expected_cluster,
                         "--initial-cluster-token": token, "--initial-advertise-peer-urls": member.peer_url,
                         "--bump-revision": "1000000000"}
        assert commands[1].endswith(" --mark-compacted")
        owner = ["chown -R etcd:etcd /var/lib/kubeha-etcd/restore.kubeha"] if data_dir == "/var/lib/kubeha-etcd" else []
        assert commands[2:-1] == owner
        # the old data moved aside (never deleted), the restored data where etcd reads it
        swap = commands[-1]
        assert f"mv {data_dir}/member {data_dir}/member.before-restore-$(date" in swap
        assert swap.endswith(f"mv {data_dir}/restore.kubeha/member {data_dir}/member && rmdir {data_dir}/restore.kubeha")
        assert not any(f"rm -rf {data_dir}/member" in c or f"rm -rf {data_dir} " in c for c in commands)
    steps = "\n".join(plan.describe())
    assert snapshot().name in steps and token in steps and "--mark-compacted" in steps
    assert ("systemctl stop etcd" in steps) == (cluster.etcd.topology == "external")
    assert ("etcd.yaml" in steps) == (cluster.etcd.topology == "stacked")


@pytest.mark.parametrize(("knob", "value", "message"), [
    ("backup.schedule", "*-*-* 00/6:00:00", None),
    ("backup.schedule", "daily", None),
    ("backup.schedule", "Mon..Fri *-*-* 02:30", None),
    ("backup.schedule", "hourly\nExecStart=/bin/sh", "not a systemd calendar event"),
    ("backup.schedule", "", "is empty: remove the key to use the default"),
    ("backup.schedule", "*-*-* 25:00:00 garbage;rm", "not a systemd calendar event"),
    ("backup.keep", 0, "at least one"),
    ("backup.min_free_mb", -1, "must not be negative"),
])
def test_validation_checks_the_backup_knobs(knob, value, message, tmp_path):
    cluster, problems = validate(local_copy(CLUSTER_FILES["lab-ha"], tmp_path, **{knob: value}))
    found = [str(p) for p in problems if p.field == knob]
    assert (found == []) if message is None else (len(found) == 1 and message in found[0]), problems


def test_the_defaults_take_a_snapshot_every_six_hours_and_keep_two_days():
    cluster = shipped("lab-ha")
    assert (cluster.backup.schedule, cluster.backup.keep, cluster.backup.fetch) == ("*-*-* 00/6:00:00", 8, True)
    assert cluster.backup.min_free_mb == 1024


def test_the_local_copies_live_in_the_state_directory(tmp_path, state_dir):
    cluster, _ = cluster_copy("lab-ha", tmp_path)
    assert backup.local_dir(cluster) == state_dir / "lab-ha" / "etcd-snapshots"
    assert backup.local_snapshot(cluster, "x") == (None, state_dir / "lab-ha" / "etcd-snapshots" / "x.db")
    directory = backup.local_dir(cluster)
    directory.mkdir(parents=True)
    (directory / "x.json").write_text(json.dumps({"a": 1}))
    assert backup.local_snapshot(cluster, "x")[0] == '{"a": 1}'
