"""The etcd backup drills, on a cluster the e2e tier has already deployed (no deploy of their
own): the snapshot timer's service, backup.py, restore.py's refusals, and the restore after
losing two, then all three etcd members' data. A test module runs them by subclassing
BackupAndRestore after its other checks; benchmarks/deploy_times.py times a Drill.

A member "loses its data" as a machine whose disk is gone: its etcd is stopped and its data dir
emptied, and it stays down (restarted on an empty data dir, etcd may rejoin the survivors and
heal by itself, which would prove nothing). With stacked etcd, kubeadm's static pod is stopped
by stopping the kubelet, which the restore starts again.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

from artifacts import layout
from cluster import backup, etcd
from e2e_checks import planned_on
from e2e_cluster import workload_manifest
from support import run_pyinfra, wait_until

RESTORE = "restore.py"
RESTORE_STEPS = ("Restore: stop every apiserver (and stacked etcd)", "Restore: restore every member into a new data dir",
                 "Restore: start etcd on every member", "Restore: start every apiserver",
                 "Restore: restart controller-managers, schedulers and kubelets")
SNAPSHOT_LINE = re.compile(r"etcd snapshot (\S+): (\d+) bytes, revision (\d+), sha256 ([0-9a-f]{64})")


def members(cluster) -> list[str]:
    """The hosts that run an etcd member and take the snapshots."""
    return [m.name for m in etcd.members(cluster.definition)]


def local_dir(cluster):
    """The local copies, in the state directory the e2e runs give pyinfra."""
    return cluster.state_dir / cluster.name / backup.LOCAL_DIR


def data_dir(cluster) -> str:
    return etcd.layout(cluster.definition).data_dir


def snapshots_on(cluster, member) -> dict[str, backup.Snapshot]:
    """The snapshots in a member's snapshot directory, by their metadata."""
    listed = cluster.lab.sudo(member, f"cat {backup.SNAPSHOT_DIR}/*.json 2>/dev/null || true").stdout
    found = [backup.Snapshot.from_json(line) for line in listed.splitlines() if line.strip()]
    return {s.name: s for s in found}


def everywhere(cluster) -> dict[str, dict[str, backup.Snapshot]]:
    return {member: snapshots_on(cluster, member) for member in members(cluster)}


def run_the_timers_service(cluster) -> dict[str, float]:
    """What the timer does when it fires: the snapshot service on every member (here one after
    the other). Seconds each took."""
    took = {}
    for member in members(cluster):
        started = time.monotonic()
        cluster.lab.sudo(member, f"systemctl start {backup.SERVICE}", timeout=300)
        took[member] = time.monotonic() - started
    return took


@contextmanager
def restore_request(snapshot: str | None, confirm=False):
    """The environment restore.py reads, for the runs inside."""
    saved = {name: os.environ.get(name) for name in (backup.RESTORE_ENV, backup.CONFIRM_ENV)}
    for name, value in ((backup.RESTORE_ENV, snapshot), (backup.CONFIRM_ENV, "yes" if confirm else None)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def restore(cluster, snapshot: str | None, dry=False, confirm=False):
    """restore.py; a refused restore raises AssertionError with pyinfra's output."""
    with restore_request(snapshot, confirm):
        changes, _ = run_pyinfra(RESTORE, cluster.lab.cluster_file, cluster.state_dir, dry=dry)
    return changes


def backup_now(cluster):
    """backup.py: (the snapshot it took, as its metadata in the local state says, seconds)."""
    started = time.monotonic()
    changes, output = run_pyinfra("backup.py", cluster.lab.cluster_file, cluster.state_dir)
    seconds = time.monotonic() - started
    assert planned_on(changes, "Take an etcd snapshot on the leader") == set(members(cluster)), changes
    printed = SNAPSHOT_LINE.findall(output)
    assert len(printed) == 1, output[-3000:]
    name, size, revision, sha256 = printed[0]
    local = local_dir(cluster) / f"{name}.db"
    snapshot = backup.Snapshot.from_json(local.with_suffix(".json").read_text())
    assert (snapshot.size, snapshot.revision, snapshot.sha256) == (int(size), int(revision), sha256)
    assert local.stat().st_size == snapshot.size and backup.file_sha256(local) == sha256
    return snapshot, seconds


def wipe(cluster, member):
    """The member's etcd stopped, its data gone, and it stays down."""
    if cluster.definition.etcd.topology == "external":
        stop = "systemctl stop etcd"
    else:  # kubeadm's static pod: no kubelet to start it again
        stop = ("systemctl stop kubelet && ids=$(crictl ps -q --name '^etcd$') && "
                "if [ -n \"$ids\" ]; then crictl stop $ids >/dev/null; fi")
    cluster.lab.sudo(member, f"{stop} && rm -rf {data_dir(cluster)}/member")


def serves(cluster, configmap) -> bool:
    return cluster.kubectl(f"get configmap {configmap} -o name --request-timeout=5s", check=False,
                           timeout=30).returncode == 0


def pods(cluster, app):
    """{pod name: (uid, running and ready)} of a workload."""
    return {p["metadata"]["name"]: (p["metadata"]["uid"], p["status"].get("phase") == "Running" and all(
        c["ready"] for c in p["status"].get("containerStatuses", [])))
        for p in cluster.pods("default", f"app={app}")}


def kept_aside(cluster):
    """{member: the data dirs a restore moved aside on it}"""
    return {member: set(cluster.lab.sudo(member, f"ls -d {data_dir(cluster)}/member.before-restore-* 2>/dev/null "
                                                 "|| true").stdout.split())
            for member in members(cluster)}


@dataclass
class Drill:
    """ConfigMap A written, a snapshot taken (backup.py), ConfigMap B written, then `wiped`
    members lose their data (the last ones of the cluster file) and restore.py restores the
    snapshot. Afterwards the API answers, A is there and B is not, every node is Ready, the
    workload's pods still run (the same pods), a scaled Deployment really scales, and deploy.py
    changes nothing on its second run (nor touches etcd or the control plane on its first).
    The next snapshot works. `run` returns the figures, in seconds."""

    cluster: object
    wiped: int
    snapshot_bytes: int = 0

    def run(self) -> dict[str, float]:
        cluster, figures = self.cluster, {}
        tag = f"e2e-restore-{self.wiped}"
        lost = members(cluster)[-self.wiped:]
        image = layout.image_refs()["agnhost"]
        cluster.kubectl(f"create configmap {tag}-a --from-literal=written=before-the-snapshot")
        cluster.kubectl("apply -f -", stdin=workload_manifest(tag, len(cluster.nodes), image))
        try:
            cluster.kubectl(f"rollout status deployment/{tag} --timeout=240s", timeout=300)
            workload = pods(cluster, tag)
            snapshot, figures["backup.py"] = backup_now(cluster)
            self.snapshot_bytes = snapshot.size
            cluster.kubectl(f"create configmap {tag}-b --from-literal=written=after-the-snapshot")

            for member in lost:
                wipe(cluster, member)
            assert wait_until(lambda: not serves(cluster, f"{tag}-a"), 120), \
                f"the API still serves with the data of {', '.join(lost)} gone"

            plan = restore(cluster, snapshot.name, dry=True)
            for step in RESTORE_STEPS:
                assert planned_on(plan, step), (step, plan)
            assert planned_on(plan, "Restore: restore every member into a new data dir") == set(members(cluster))
            assert not serves(cluster, f"{tag}-a"), "--dry changed something"

            set_aside = kept_aside(cluster)
            started = time.monotonic()
            restore(cluster, snapshot.name)
            assert wait_until(cluster.api_answers_through_vip, 300, interval=0.5), "the API does not answer through the VIP"
            figures["restore.py until the API answers through the VIP"] = time.monotonic() - started

            assert wait_until(lambda: serves(cluster, f"{tag}-a"), 60)
            assert not serves(cluster, f"{tag}-b"), "written after the snapshot, yet there after the restore"
            assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), cluster.node_readiness()
            # the pods that ran before are the pods that run now
            assert wait_until(lambda: pods(cluster, tag) == {n: (uid, True) for n, (uid, _) in workload.items()},
                              120, interval=5), (workload, pods(cluster, tag))
            # the controllers' watches ended with the old revisions and started again on the new
            cluster.kubectl(f"scale deployment/{tag} --replicas={2 * len(cluster.nodes)}")
            cluster.kubectl(f"rollout status deployment/{tag} --timeout=240s", timeout=300)
            assert sum(ready for _, ready in pods(cluster, tag).values()) == 2 * len(cluster.nodes)
            # the old data is kept beside the restored member (an earlier drill's is kept too)
            now_aside = kept_aside(cluster)
            for member in members(cluster):
                assert bool(now_aside[member] - set_aside[member]) == (member not in lost), (member, now_aside[member])
                assert set_aside[member] <= now_aside[member], (member, set_aside[member], now_aside[member])

            first = cluster.timed(f"deploy after a restore ({self.wiped} wiped)", cluster.deploy)
            assert not [op for op in first if op.startswith(("tasks/etcd.py", "tasks/control_plane.py"))], first
            assert cluster.timed(f"second deploy after a restore ({self.wiped} wiped)", cluster.deploy) == {}

            before = {n for found in everywhere(cluster).values() for n in found}
            run_the_timers_service(cluster)
            after = {s.name: s for found in everywhere(cluster).values() for s in found.values()}
            (new,) = set(after) - before
            assert after[new].revision > snapshot.revision + backup.BUMP_REVISION
        finally:
            cluster.kubectl(f"delete deployment,service {tag} --wait=false", check=False)
            cluster.kubectl(f"delete configmap {tag}-a {tag}-b --ignore-not-found", check=False)
        figures = {f"{what} (drill: {self.wiped} of {len(members(cluster))} members wiped)": s
                   for what, s in figures.items()}
        for what, seconds in figures.items():
            cluster.times[what] = seconds
            print(f"\n{cluster.name}: {what}: {seconds:.1f} s (snapshot of {self.snapshot_bytes} bytes)")
        return figures


class BackupAndRestore:
    """The drills, in this order, after a module's other checks (they lose etcd for real)."""

    def test_the_timers_service_takes_one_snapshot_per_run_on_the_leader_and_prunes_the_oldest(self, cluster):
        takers = members(cluster)
        for member in takers:
            state = cluster.lab.ssh(member, f"systemctl is-enabled {backup.TIMER}; systemctl is-active {backup.TIMER}; "
                                            f"systemctl show -p NextElapseUSecRealtime --value {backup.TIMER}",
                                    check=False).stdout.split("\n")
            assert state[:2] == ["enabled", "active"] and state[2].strip(), (member, state)
        keep = cluster.definition.backup.keep
        previous = everywhere(cluster)
        added = []
        for _ in range(keep + 1):
            time.sleep(1.1)  # snapshot names are to the second
            took = run_the_timers_service(cluster)
            current = everywhere(cluster)
            new = [(m, n) for m in takers for n in current[m] if n not in previous[m]]
            assert len(new) == 1, f"one run of every member's service made {new}"
            added.append(new[0])
            previous = current
        holders = {member for member, _ in added}
        assert len(holders) == 1, f"the snapshots were taken on {holders}: the leader changed meanwhile?"
        (holder,) = holders
        kept = everywhere(cluster)[holder]
        assert len(kept) == keep and added[0][1] not in kept and added[-1][1] in kept
        cluster.times["snapshot: the leader's service run"] = took[holder]
        cluster.times["snapshot bytes"] = kept[added[-1][1]].size
        print(f"\n{cluster.name}: a snapshot on the leader {holder}: {took[holder]:.1f} s, "
              f"{kept[added[-1][1]].size} bytes")
        modes = cluster.lab.sudo(holder, f"stat -c '%a %U:%G %n' {backup.SNAPSHOT_DIR} {backup.SNAPSHOT_DIR}/*").stdout
        lines = modes.splitlines()
        assert lines[0].startswith("700 root:root ") and all(line.startswith("600 root:root ") for line in lines[1:])
        for member in takers:
            result = cluster.lab.ssh(member, f"systemctl show -p Result --value {backup.SERVICE}").stdout.strip()
            assert result == "success", (member, result)
            if member != holder:
                journal = cluster.lab.sudo(member, f"journalctl -u {backup.SERVICE} -n 20 -o cat --no-pager").stdout
                assert f"{member} is not the leader" in journal

    def test_backup_py_takes_a_snapshot_now_and_copies_it_here(self, cluster):
        snapshot, seconds = backup_now(cluster)
        directory = local_dir(cluster)
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        for suffix in (".db", ".json"):
            assert oct((directory / f"{snapshot.name}{suffix}").stat().st_mode & 0o777) == "0o600"
        assert snapshot.cluster == cluster.name and snapshot.member in members(cluster)
        cluster.times["backup.py"] = seconds

    def test_a_restore_is_refused_before_anything_is_touched(self, cluster):
        directory = local_dir(cluster)
        newest = backup.newest([p.stem for p in directory.glob("*.db")], cluster.name)
        good = backup.Snapshot.from_json((directory / f"{newest}.json").read_text())
        data = (directory / f"{newest}.db").read_bytes()
        bogus = []

        def local(stamp, content, **changes):
            name = f"{backup.name_prefix(cluster.name)}{stamp}-{good.member}"
            (directory / f"{name}.db").write_bytes(content)
            (directory / f"{name}.json").write_text(backup.Snapshot(**{**good.__dict__, "name": name, **changes}).to_json())
            bogus.append(name)
            return name

        corrupt = bytearray(data)
        corrupt[len(corrupt) // 2] ^= 0xFF
        cases = [
            (None, "name the snapshot to restore"),
            (f"{backup.name_prefix(cluster.name)}20000101T000000Z-nowhere", "there is no snapshot"),
            (local("20000101T000001Z", bytes(corrupt)), "it is corrupt"),
            (local("20000101T000002Z", data[: len(data) // 2]), "it is truncated"),
            (local("20000101T000003Z", data, cluster="another-cluster"), "a snapshot of the cluster another-cluster"),
            (newest, f"etcd is healthy ({len(members(cluster))} of {len(members(cluster))} members)"),
        ]
        try:
            for name, refusal in cases:
                try:
                    restore(cluster, name)
                except AssertionError as error:
                    assert "restore refused, nothing was changed: " in str(error) and refusal in str(error), \
                        (name, str(error)[-2000:])
                else:
                    raise AssertionError(f"restore.py ran with {name}")
            for plane in cluster.hosts_with_role("control_plane"):
                found = cluster.lab.sudo(plane, f"ls /etc/kubernetes/manifests; ls {backup.RECORD} 2>/dev/null || true")
                assert "kube-apiserver.yaml" in found.stdout and backup.RECORD not in found.stdout
            assert cluster.api_answers_through_vip()
        finally:
            for name in bogus:
                for suffix in (".db", ".json"):
                    (directory / f"{name}{suffix}").unlink(missing_ok=True)

    def test_a_restore_after_losing_two_of_three_members(self, cluster):
        Drill(cluster, wiped=2).run()

    def test_a_restore_after_losing_every_member(self, cluster):
        Drill(cluster, wiped=len(members(cluster))).run()

