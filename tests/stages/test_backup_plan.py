"""The etcd backups stage and backup.py planned by pyinfra against the @fake connector
(tests/plan/fake_inventory.py): which hosts get the timer and what they install, which member
fetches the newest snapshot. The commands of a run come from `-y -vv`, which the fake hosts
only record. No host is ever contacted.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import CLUSTER_FILES, local_copy

from cluster import backup
from cluster.model import load

PROJECT = Path(__file__).resolve().parents[2]
LINUX = {"uname -s": "Linux", "uname -m": "x86_64", "command -v useradd": "/usr/sbin/useradd"}
DATA = SimpleNamespace(etcd_data_dir="/var/lib/kubeha-etcd", etcd_pki_dir="/etc/etcd/pki",
                       pki_dir="/etc/kubernetes/pki", kubernetes_dir="/etc/kubernetes")
SNAPSHOTS = f"{backup.SNAPSHOT_DIR}/*.json"


def run(workdir, cluster_name, deploy, responses, execute=False, env=None, **overrides):
    """`deploy` against the fake hosts: (plan [(operation, [nodes changed])], output) or, with
    `execute`, ({node: [commands]}, output). A refused run has no plan: (None, output)."""
    cluster_file = local_copy(CLUSTER_FILES[cluster_name], workdir, **overrides)
    fake_state = workdir / f"fake-{cluster_name}.json"
    fake_state.write_text(json.dumps(responses))
    environment = {**os.environ, "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(workdir / "state"),
                   "KUBEHA_FAKE_STATE": str(fake_state), "PYINFRA_FAKE_DELAY": "0", "PYINFRA_FAKE_DELAY_JITTER": "0",
                   **(env or {})}
    for name in (backup.RESTORE_ENV, backup.CONFIRM_ENV):
        if name not in (env or {}):
            environment.pop(name, None)
    args = [sys.executable, "-m", "pyinfra", "tests/plan/fake_inventory.py", deploy]
    args += ["-y", "-vv"] if execute else ["--dry", "--json", "-v"]
    result = subprocess.run(args, cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    if execute:
        found = {}
        for node, command in re.findall(r"^\[@fake/(\S+)\]\s+>>> (.*)$", output, re.M):
            found.setdefault(node, []).append(command)
        return found, output
    if result.returncode != 0:
        return None, output
    plan = [(op["name"], sorted(h.removeprefix("@fake/") for h in op["hosts_with_change"]))
            for op in json.loads(result.stdout)["plan"]]
    return plan, output


def changed(plan, prefixes=("",)):
    return {name: hosts for name, hosts in plan if name.startswith(prefixes) and hosts}


def stat(path, user, mode):
    return f"user={user} group={user} mode={mode} atime=1 mtime=1 ctime=1 size=1 '{path}'"


def sha256_line(path, content):
    return f"{hashlib.sha256(content.encode()).hexdigest()}  {path}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The runs' directory; this process's state directory is the runs' too (local snapshots)."""
    directory = tmp_path_factory.mktemp("backup-plan")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBEHA_STATE_DIR", str(directory / "state"))
        yield directory


def cluster_of(name, workdir):
    cluster, problems = load(local_copy(CLUSTER_FILES[name], workdir))
    assert not problems
    return cluster


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
    layout = backup.layout(cluster, DATA)
    responses = {
        f"%N' {backup.SNAPSHOT_DIR} ": stat(backup.SNAPSHOT_DIR, "root", "drwx------"),
        f"sha256sum {backup.SCRIPT} ": sha256_line(backup.SCRIPT, backup.snapshot_script(cluster, me, layout,
                                                                                          "/usr/local/bin")),
    }
    for unit, content in backup.snapshot_units(cluster, me).items():
        path = f"/etc/systemd/system/{unit}"
        responses[f"sha256sum {path} "] = sha256_line(path, content)
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
