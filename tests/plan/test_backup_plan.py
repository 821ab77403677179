"""The etcd backups stage, backup.py and restore.py planned by pyinfra against the @fake connector
(tests/support.py: fake_pyinfra): which hosts get the timer and what they install, which member
fetches the newest snapshot, every refusal of a restore (before anything is touched), the
restore's steps on the right hosts for both topologies, and a resumed restore. The commands of a
run come from `-y -vv`, which the fake hosts only record. No host is ever contacted.
"""

import hashlib
import json
import re

import pytest
from support import CLUSTER_FILES, cluster_copy, fake_pyinfra, local_copy, sha256_response, stat_response

from cluster import backup, etcd, paths

LINUX = {"uname -s": "Linux", "uname -m": "x86_64", "command -v useradd": "/usr/sbin/useradd"}
SNAPSHOTS = f"{backup.SNAPSHOT_DIR}/*.json"
TOOLS = {"command -v etcdutl ||": "/usr/local/bin/etcdutl", "command -v etcdctl ||": "/usr/local/bin/etcdctl"}
APISERVER = "[ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]"
ETCD_POD = "[ -f /etc/kubernetes/manifests/etcd.yaml ]"
RECORD = f"cat {backup.RECORD}"
FAILING = "echo 'kubeha: "  # operations/failure.py fail()


def run(workdir, cluster_name, deploy, responses, execute=False, env=None, **overrides):
    """`deploy` against the fake hosts: (plan [(operation, [nodes changed])], output) or, with
    `execute`, ({node: [commands]}, output). A refused run has no plan: (None, output)."""
    result = fake_pyinfra(local_copy(CLUSTER_FILES[cluster_name], workdir, **overrides), workdir / "state", deploy,
                          responses, execute=execute, check=False, env=env)
    if execute:
        return result.commands, result.output
    return (result.plan if result.returncode == 0 else None), result.output


def changed(plan, prefixes=("",)):
    return {name: hosts for name, hosts in plan if name.startswith(prefixes) and hosts}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The runs' directory; this process's state directory is the runs' too (local snapshots)."""
    directory = tmp_path_factory.mktemp("backup-plan")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBEHA_STATE_DIR", str(directory / "state"))
        yield directory


def cluster_of(name, workdir):
    return cluster_copy(name, workdir)[0]


def snapshot_entry(cluster_name, stamp, member, data=b"snapshot", revision=4821):
    name = f"{backup.name_prefix(cluster_name)}{stamp}-{member}"
    snap = backup.Snapshot(name=name, cluster=cluster_name, member=member, taken_at="2026-11-22T06:00:00Z",
                           revision=revision, etcd_version="3.6.14", size=len(data),
                           sha256=hashlib.sha256(data).hexdigest())
    return snap, f"{name} {len(data)} {snap.to_json().strip()}"


# ---- the deploy's stage ------------------------------------------------------------------------

def test_the_timer_goes_on_the_external_etcd_members_only(workdir):
    plan, output = run(workdir, "lab-ha", "tasks/etcd_backup.py", {"*": LINUX})
    assert plan, output[-3000:]
    members = ["cp1", "cp2", "cp3"]
    assert changed(plan) == {name: members for name in (
        "etcd snapshot directory", "Write the etcd snapshot script", "Write the etcd snapshot service",
        "Write the etcd snapshot timer", "Enable the etcd snapshot timer")}
    # nothing fetched while no member holds a snapshot; the external members have etcdutl already
    assert "Fetch the newest etcd snapshot into the local state" in dict(plan)
    assert not any("Download etcd" in name for name, _ in plan)


def test_stacked_control_planes_get_etcdctl_and_etcdutl_from_the_pinned_release(workdir):
    plan, output = run(workdir, "topology-a", "tasks/etcd_backup.py", {"*": LINUX})
    assert plan, output[-3000:]
    planes = ["k1", "k2", "k3"]
    changes = changed(plan)
    assert changes["Download etcd 3.6.14"] == changes["Unpack etcd 3.6.14"] == planes
    assert changes["Link etcdctl 3.6.14"] == changes["Link etcdutl 3.6.14"] == planes
    assert "Link etcd 3.6.14" not in changes  # kubeadm's static pod runs etcd itself
    assert changes["Write the etcd snapshot timer"] == changes["Enable the etcd snapshot timer"] == planes


def converged_member(cluster, name):
    me = backup.member(cluster, name)
    layout = etcd.layout(cluster)
    responses = {**stat_response(backup.SNAPSHOT_DIR, "root", "drwx------"),
                 **sha256_response(backup.SCRIPT, backup.snapshot_script(cluster, me, layout, paths.BIN_DIR))}
    for unit, content in backup.snapshot_units(cluster, me).items():
        responses.update(sha256_response(f"{backup.UNIT_DIR}/{unit}", content))
    responses[f"--property SubState {backup.TIMER}"] = [f"Id={backup.TIMER}", "SubState=waiting"]
    responses[f"--property UnitFileState {backup.TIMER}"] = [f"Id={backup.TIMER}", "UnitFileState=enabled"]
    return {**responses, **LINUX}


def test_a_converged_member_plans_no_change_and_the_newest_snapshot_is_fetched_from_its_holder(workdir):
    cluster = cluster_of("lab-ha", workdir)
    responses = {name: converged_member(cluster, name) for name in ("cp1", "cp2", "cp3")}
    _, older = snapshot_entry("lab-ha", "20261122T000000Z", "cp1")
    _, newest = snapshot_entry("lab-ha", "20261122T060000Z", "cp2")
    _, foreign = snapshot_entry("lab-compact", "20261123T000000Z", "k1")
    responses["cp1"] = {SNAPSHOTS: [older, foreign], **responses["cp1"]}
    responses["cp2"] = {SNAPSHOTS: [newest], **responses["cp2"]}
    plan, output = run(workdir, "lab-ha", "tasks/etcd_backup.py", responses)
    assert plan, output[-3000:]
    assert changed(plan) == {"Fetch the newest etcd snapshot into the local state": ["cp2"]}

    plan, output = run(workdir, "lab-ha", "tasks/etcd_backup.py", responses, **{"backup.fetch": False})
    assert changed(plan) == {} and "Fetch the newest etcd snapshot into the local state" not in dict(plan)


def test_a_fetch_copies_the_snapshot_through_a_directory_only_the_login_user_reads(workdir):
    cluster = cluster_of("lab-ha", workdir)
    responses = {name: converged_member(cluster, name) for name in ("cp1", "cp2", "cp3")}
    snap, newest = snapshot_entry("lab-ha", "20261122T060000Z", "cp2")
    responses["cp2"] = {SNAPSHOTS: [newest], **responses["cp2"]}
    commands, output = run(workdir, "lab-ha", "tasks/etcd_backup.py", responses, execute=True)
    staged = [c for c in commands.get("cp2", []) if "install -m 0600" in c]
    assert len(staged) == 1, output[-3000:]
    private = re.search(r"mkdir -m 0700 (/var/tmp/kubeha-transfer-[0-9a-f]+) && chown \"\$\{SUDO_USER:-root\}\"",
                        staged[0])
    assert private and f"{backup.SNAPSHOT_DIR}/{snap.name}.db {private[1]}/{snap.name}.db" in staged[0]
    assert f"rm -rf {private[1]}" in commands["cp2"]
    assert not [c for node in ("cp1", "cp3") for c in commands.get(node, []) if "install -m 0600" in c]
    # the fake host hands over no bytes: the copy is refused, not kept
    assert "does not have the sha256 recorded" in output or "No such file" in output
    assert not (backup.local_dir(cluster) / f"{snap.name}.db").exists()


# ---- backup.py ---------------------------------------------------------------------------------

def test_backup_py_runs_the_snapshot_service_on_every_member_and_fetches_what_the_leader_took(workdir):
    installed = {f"LoadState --value -- {backup.SERVICE}": "loaded"}
    plan, output = run(workdir, "lab-ha", "backup.py", {"*": {**installed, **LINUX}})
    assert plan, output[-3000:]
    assert changed(plan) == {"Take an etcd snapshot on the leader": ["cp1", "cp2", "cp3"]}
    assert "Fetch the snapshot just taken into the local state" in dict(plan)

    plan, output = run(workdir, "lab-ha", "backup.py", {"*": LINUX})
    assert "will fail" in output and "run deploy.py first" in output


def test_backup_py_fails_when_no_member_took_a_snapshot(workdir):
    _, older = snapshot_entry("lab-ha", "20261122T000000Z", "cp1")
    responses = {"*": {f"LoadState --value -- {backup.SERVICE}": "loaded", SNAPSHOTS: [older], **LINUX}}
    commands, output = run(workdir, "lab-ha", "backup.py", responses, execute=True)
    assert "no member took a snapshot" in output, output[-3000:]
    assert all(f"systemctl start {backup.SERVICE}" in cmds for cmds in commands.values())


# ---- restore.py: refusals ----------------------------------------------------------------------

def health(members, healthy):
    listed = ",".join(m.client_url for m in members)
    return [f"#kubeha:endpoints {listed}", "#kubeha:health",
            json.dumps([{"endpoint": m.client_url, "health": m.name in healthy} for m in members])]


def lost_quorum(cluster, healthy=(), running=("cp1",)):
    """Facts of a cluster whose etcd lost its quorum (no member is healthy; etcd still runs on
    `running`), or answers again on `healthy`."""
    members = etcd.members(cluster)
    responses = {}
    for plane in cluster.control_planes:
        state = "running" if plane.name in running else "dead"
        responses[plane.name] = {"endpoint health -w json": health(members, healthy),
                                 APISERVER: ["manifest", "running"], ETCD_POD: ["manifest", "running"],
                                 "--property SubState etcd.service": ["Id=etcd.service", f"SubState={state}"],
                                 **TOOLS, **LINUX}
    return responses


def answering_again(cluster, responses):
    """`responses`, with what the closing check reads once the cluster is back: every node
    Ready, every etcd member healthy for the apiserver's client, the API on its VIP."""
    nodes = {"items": [{"metadata": {"name": h.name},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                       for h in cluster.hosts if {"control_plane", "worker"} & set(h.roles)]}
    back = {"apiserver-etcd-client.key": health(etcd.members(cluster), [m.name for m in etcd.members(cluster)]),
            "get --raw=/api/v1/nodes": json.dumps(nodes), f"https://{cluster.api.vip}:6443/healthz": "ok"}
    return {name: {**back, **facts} for name, facts in responses.items()}


def local_snapshot(of, data=b"the snapshot's bytes", **changes):
    """A snapshot of the cluster `of` in the local state, written as a fetch keeps it;
    `changes` alter its metadata."""
    snap, _ = snapshot_entry(of.name, "20261122T060000Z", "cp2", data=data)
    snap = backup.Snapshot(**{**snap.__dict__, **changes})
    directory = backup.local_dir(of)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{snap.name}.db").write_bytes(data)
    (directory / f"{snap.name}.json").write_text(snap.to_json())
    return snap


def refusal(output):
    match = re.search(r"restore refused, nothing was changed: (.*)", output)
    return match[1] if match else output[-2000:]


@pytest.fixture(scope="module")
def ha(workdir):
    return cluster_of("lab-ha", workdir)


def test_a_restore_without_a_name_is_refused_and_says_what_there_is(workdir, ha):
    snap = local_snapshot(ha)
    plan, output = run(workdir, "lab-ha", "restore.py", lost_quorum(ha))
    assert plan is None
    assert refusal(output).startswith("name the snapshot to restore: KUBEHA_RESTORE_SNAPSHOT=NAME")
    assert snap.name in refusal(output)


@pytest.mark.parametrize(("case", "message"), [
    ("unknown", "there is no snapshot lab-ha-etcd-20200101T000000Z-cp9"),
    ("truncated", "truncated: 5 of 20 bytes"),
    ("corrupt", "it is corrupt"),
    ("other cluster", "a snapshot of the cluster lab-compact, not of lab-ha"),
    ("unreadable metadata", "the metadata of"),
])
def test_a_bad_snapshot_is_refused_before_anything_is_touched(case, message, workdir, ha):
    snap = local_snapshot(ha)
    directory = backup.local_dir(ha)
    name = snap.name
    if case == "unknown":
        name = "lab-ha-etcd-20200101T000000Z-cp9"
    elif case == "truncated":
        (directory / f"{name}.db").write_bytes(b"the s")
    elif case == "corrupt":
        (directory / f"{name}.db").write_bytes(b"THE SNAPSHOT'S BYTES")
    elif case == "other cluster":
        local_snapshot(ha, cluster="lab-compact")
    else:
        (directory / f"{name}.json").write_text("{")
    plan, output = run(workdir, "lab-ha", "restore.py", lost_quorum(ha), env={backup.RESTORE_ENV: name})
    assert plan is None and message in refusal(output), output[-3000:]
    assert "Starting operation" not in output


def test_a_snapshot_on_a_member_is_checked_there(workdir, ha):
    for path in backup.local_dir(ha).glob("*"):
        path.unlink()
    snap, entry = snapshot_entry("lab-ha", "20261122T060000Z", "cp2", data=b"held by cp2")
    responses = lost_quorum(ha)
    on_cp2 = f"snapshot status {backup.SNAPSHOT_DIR}/{snap.name}.db -w json"
    responses["cp2"] = {SNAPSHOTS: [entry], on_cp2: ["#kubeha:size 11", f"#kubeha:sha256 {'0' * 64}", "#kubeha:status"],
                        **responses["cp2"]}
    plan, output = run(workdir, "lab-ha", "restore.py", responses, env={backup.RESTORE_ENV: snap.name})
    assert plan is None and "it is corrupt" in refusal(output)

    responses["cp2"][on_cp2] = ["#kubeha:size 11", f"#kubeha:sha256 {snap.sha256}", "#kubeha:status"]
    plan, output = run(workdir, "lab-ha", "restore.py", responses, env={backup.RESTORE_ENV: snap.name})
    assert plan, output[-3000:]
    assert changed(plan)["Restore: fetch the snapshot from the member that has it"] == ["cp2"]
    assert changed(plan)["Restore: the snapshot on every member"] == ["cp1", "cp3"]  # cp2 has it


def test_a_healthy_cluster_is_restored_only_when_confirmed(workdir, ha):
    snap = local_snapshot(ha)
    healthy = lost_quorum(ha, healthy=("cp1", "cp2"), running=("cp1", "cp2"))
    plan, output = run(workdir, "lab-ha", "restore.py", healthy, env={backup.RESTORE_ENV: snap.name})
    assert plan is None
    assert refusal(output).startswith("etcd is healthy (2 of 3 members): a restore would lose everything written "
                                      "since 2026-11-22T06:00:00Z; set KUBEHA_RESTORE_CONFIRM=yes")
    plan, output = run(workdir, "lab-ha", "restore.py", healthy,
                       env={backup.RESTORE_ENV: snap.name, backup.CONFIRM_ENV: "yes"})
    assert plan and changed(plan)["Restore: restore every member into a new data dir"] == ["cp1", "cp2", "cp3"]


def test_a_member_without_etcdutl_or_a_lost_manifest_is_refused(workdir, ha):
    snap = local_snapshot(ha)
    responses = lost_quorum(ha)
    responses["cp3"]["command -v etcdutl ||"] = ""
    plan, output = run(workdir, "lab-ha", "restore.py", responses, env={backup.RESTORE_ENV: snap.name})
    assert plan is None and "etcdutl is not installed on cp3: run deploy.py first" in refusal(output)

    responses = lost_quorum(ha)
    responses["cp2"][APISERVER] = []
    plan, output = run(workdir, "lab-ha", "restore.py", responses, env={backup.RESTORE_ENV: snap.name})
    assert plan is None
    assert "/etc/kubernetes/manifests/kube-apiserver.yaml is missing on cp2" in refusal(output)


# ---- restore.py: the plan ----------------------------------------------------------------------

RESTORE_STEPS = (
    "Restore: the snapshot on every member", "Restore: record the restore on every host",
    "Restore: stop every apiserver (and stacked etcd)", "Restore: stop etcd",
    "Restore: restore every member into a new data dir", "Restore: start etcd on every member",
    "Restore: start every apiserver", "Restore: restart controller-managers, schedulers and kubelets",
    "Restore: done")


def test_the_plan_of_a_restore_after_losing_the_quorum_external(workdir, ha):
    snap = local_snapshot(ha)
    plan, output = run(workdir, "lab-ha", "restore.py", lost_quorum(ha), env={backup.RESTORE_ENV: snap.name})
    assert plan, output[-3000:]
    members, nodes = ["cp1", "cp2", "cp3"], ["cp1", "cp2", "cp3", "w1", "w2"]
    assert changed(plan, ("Restore:",)) == {
        "Restore: the snapshot on every member": members,
        "Restore: record the restore on every host": nodes,
        "Restore: stop every apiserver (and stacked etcd)": members,
        "Restore: stop etcd": ["cp1"],  # the others' etcd is not running
        "Restore: restore every member into a new data dir": members,
        "Restore: start etcd on every member": members,
        "Restore: start every apiserver": members,
        "Restore: restart controller-managers, schedulers and kubelets": nodes,
        "Restore: done": nodes,
    }
    # the steps in this order, each on every host (so pyinfra keeps the order everywhere)
    names = [name for name, _ in plan]
    assert [n for n in names if n in RESTORE_STEPS] == list(RESTORE_STEPS)
    assert names.index("Restore: done") < next(i for i, n in enumerate(names) if n.endswith("Check the cluster"))
    for line in ("restore " + snap.name, "new cluster token lab-ha-restored-", "--bump-revision 1000000000"):
        assert line in output


def test_the_plan_of_a_restore_stacked(workdir):
    cluster = cluster_of("topology-a", workdir)
    snap = local_snapshot(cluster)
    plan, output = run(workdir, "topology-a", "restore.py", lost_quorum(cluster),
                       env={backup.RESTORE_ENV: snap.name})
    assert plan, output[-3000:]
    planes, nodes = ["k1", "k2", "k3"], ["k1", "k2", "k3", "k4"]
    changes = changed(plan, ("Restore:",))
    assert changes["Restore: stop every apiserver (and stacked etcd)"] == planes
    assert "Restore: stop etcd" not in changes  # kubeadm's etcd stops with its static pod
    assert changes["Restore: restore every member into a new data dir"] == planes
    assert changes["Restore: start etcd on every member"] == planes
    assert changes["Restore: restart controller-managers, schedulers and kubelets"] == nodes
    assert "kubeadm's etcd.yaml moved out of and back into the manifests" in output


def test_an_interrupted_restore_resumes_where_it_stopped_without_asking_again(workdir, ha):
    snap = local_snapshot(ha)
    token = "lab-ha-restored-20261122T070000Z"
    responses = lost_quorum(ha, healthy=("cp1", "cp2", "cp3"), running=("cp1", "cp2", "cp3"))  # restored, running
    record = backup.record_lines(snap.name, token)
    for name in ("cp1", "cp2", "cp3"):
        responses[name] = {RECORD: record + ["restored=yes"], APISERVER: ["aside"], **responses[name]}
    for name in ("w1", "w2"):
        responses[name] = {RECORD: record, **LINUX}
    plan, output = run(workdir, "lab-ha", "restore.py", responses, env={backup.RESTORE_ENV: snap.name})
    assert plan, refusal(output)
    assert f"new cluster token {token}" in output and "(resumed)" in output
    assert changed(plan, ("Restore:",)) == {
        "Restore: the snapshot on every member": ["cp1", "cp2", "cp3"],  # the fake hosts hold no copy
        "Restore: start every apiserver": ["cp1", "cp2", "cp3"],
        "Restore: restart controller-managers, schedulers and kubelets": ["cp1", "cp2", "cp3", "w1", "w2"],
        "Restore: done": ["cp1", "cp2", "cp3", "w1", "w2"],
    }


def test_another_interrupted_restore_must_be_finished_first(workdir, ha):
    snap = local_snapshot(ha)
    responses = lost_quorum(ha)
    responses["w1"] = {RECORD: backup.record_lines("lab-ha-etcd-20261101T000000Z-cp1", "t"), **LINUX}
    plan, output = run(workdir, "lab-ha", "restore.py", responses, env={backup.RESTORE_ENV: snap.name})
    assert plan is None and "a restore of lab-ha-etcd-20261101T000000Z-cp1 was interrupted" in refusal(output)


# ---- restore.py: what a run does ---------------------------------------------------------------

def checked_copy(snap):
    """(the SnapshotFile fact's command, its output) of a member's whole copy of `snap`."""
    status = f"snapshot status {backup.SNAPSHOT_DIR}/{snap.name}.db -w json"
    return status, ["#kubeha:size 20", f"#kubeha:sha256 {snap.sha256}", "#kubeha:status",
                    json.dumps({"hash": 1, "revision": snap.revision, "totalKey": 3, "totalSize": 20,
                                "version": "3.6.0"})]


def test_a_copy_that_fails_its_check_stops_the_restore_on_every_host(workdir, ha):
    snap = local_snapshot(ha)
    responses = lost_quorum(ha)
    status, good = checked_copy(snap)
    for name in ("cp1", "cp3"):
        responses[name] = {status: good, **responses[name]}
    responses["cp2"] = {status: good[:3], **responses["cp2"]}  # etcdutl cannot read cp2's copy
    for name in responses:  # what fail() runs fails, as on a real host
        responses[name] = {FAILING: {"success": False}, **responses[name]}
    commands, output = run(workdir, "lab-ha", "restore.py", responses, execute=True,
                           env={backup.RESTORE_ENV: snap.name})
    assert "etcdutl cannot read it as an etcd snapshot" in output, output[-3000:]
    assert "the restore stopped: a step failed on @fake/cp2" in output
    touched = [c for cmds in commands.values() for c in cmds
               if c.startswith(("mv -f /etc/kubernetes/manifests/", "systemctl stop etcd", "etcdutl snapshot restore",
                                "mkdir -p /etc/kubeha"))]
    assert touched == []


def test_a_run_restores_every_member_with_the_same_token_and_keeps_the_old_data(workdir, ha):
    snap = local_snapshot(ha)
    responses = lost_quorum(ha)
    status, good = checked_copy(snap)
    for name in ("cp1", "cp2", "cp3"):
        responses[name] = {status: good, **responses[name]}
    commands, output = run(workdir, "lab-ha", "restore.py", answering_again(ha, responses), execute=True,
                           env={backup.RESTORE_ENV: snap.name})
    restores = {node: [c for c in cmds if "etcdutl snapshot restore" in c] for node, cmds in commands.items()}
    tokens = {re.search(r"--initial-cluster-token (\S+)", r[0])[1] for r in restores.values() if r}
    assert sorted(n for n, r in restores.items() if r) == ["cp1", "cp2", "cp3"], output[-3000:]
    assert len(tokens) == 1 and tokens.pop().startswith("lab-ha-restored-")
    for node in ("cp1", "cp2", "cp3"):
        sequence = commands[node]
        first = lambda words: next(i for i, c in enumerate(sequence) if words in c)  # noqa: E731
        # (a fake host keeps answering its first facts: the apiserver's manifest never looks moved
        # back, the restore's record never looks written)
        assert first(f"> {backup.RECORD}") < first("mv -f /etc/kubernetes/manifests/kube-apiserver.yaml") \
            < first("etcdutl snapshot restore") < first(f"echo restored=yes >> {backup.RECORD}") \
            < first("systemctl start --no-block etcd") < first(":6443/healthz | grep -qx ok") \
            < first("systemctl restart kubelet")
        assert any("mv /var/lib/kubeha-etcd/member /var/lib/kubeha-etcd/member.before-restore-" in c for c in sequence)
        assert any(c.startswith("chown -R etcd:etcd /var/lib/kubeha-etcd/restore.kubeha") for c in sequence)
    for node in ("w1", "w2"):
        assert "systemctl restart kubelet" in commands[node]
        assert not any("crictl stop" in c for c in commands[node])


def test_a_stacked_run_nudges_a_kubelet_that_does_not_start_etcd_and_says_why_a_member_stays_down(workdir):
    cluster = cluster_of("topology-a", workdir)
    snap = local_snapshot(cluster)
    responses = lost_quorum(cluster)
    status, good = checked_copy(snap)
    for name in ("k1", "k2", "k3"):
        responses[name] = {status: good, **responses[name]}
    commands, output = run(workdir, "topology-a", "restore.py", answering_again(cluster, responses), execute=True,
                           env={backup.RESTORE_ENV: snap.name})
    for node in ("k1", "k2", "k3"):
        sequence = commands[node]
        first = lambda words: next(i for i, c in enumerate(sequence) if words in c)  # noqa: E731
        nudge = first("crictl ps -q --name '^etcd$' | grep -q . || systemctl restart kubelet")
        wait = first("endpoint health >/dev/null")
        assert first("etcdutl snapshot restore") < nudge < wait, output[-3000:]
        assert "crictl logs --tail 20" in sequence[wait], "a member that stays down shows what etcd says"
