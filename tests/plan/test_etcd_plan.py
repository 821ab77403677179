"""The etcd stage planned by pyinfra against the @fake connector (tests/support.py: fake_pyinfra).

The fake hosts answer the fact commands from canned outputs that describe a fresh cluster, a
converged one, one whose third member is missing, and one whose third host is down. Plans come
from `--dry --json`; the commands of a run come from `-y -vv`, which the fake hosts only record.
No host and none of the files' addresses is ever contacted.
"""

import hashlib
import json
import re

import pytest

from cluster import etcd as etcd_plan, paths
from cluster.secrets import ClusterSecrets
from support import CLUSTER_FILES, cluster_copy, fake_pyinfra, local_copy, stat_response

LINUX = {"uname -s": "Linux", "uname -m": "x86_64", "command -v useradd": "/usr/sbin/useradd"}
MEMBERSHIP_OPS = ("etcd: decide", "etcd: start", "etcd: add", "etcd: restart")
STATE_OPS = ("etcd PKI:", "Write the etcd unit", "etcd owns") + MEMBERSHIP_OPS


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("etcd-plan")


def run(workdir, cluster_name, responses, execute=False):
    """The etcd stage against the fake hosts: its plan, or with `execute` its run (FakeRun)."""
    return fake_pyinfra(local_copy(CLUSTER_FILES[cluster_name], workdir), workdir / "state", "tasks/etcd.py",
                        responses, execute=execute, check=not execute)


def changed(plan, prefixes):
    return {name: hosts for name, hosts in plan if name.startswith(prefixes) and hosts}


class LabHa:
    """Canned facts of the lab-ha cluster's etcd members, from its real local state."""

    def __init__(self, workdir):
        self.cluster, _ = cluster_copy("lab-ha", workdir)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KUBEHA_STATE_DIR", str(workdir / "state"))
            self.secrets = ClusterSecrets(self.cluster).ensure()
        self.etcd = etcd_plan.from_cluster(self.cluster, {})
        self.names = [m.name for m in self.etcd.members]

    def member_json(self, names, unstarted=()):
        members = []
        for index, name in enumerate(names):
            m = self.etcd.member(name)
            started = name not in unstarted
            members.append({"ID": 1000 + index, "name": name if started else "", "peerURLs": [m.peer_url],
                            "clientURLs": [m.client_url] if started else [], "isLearner": False})
        return json.dumps({"header": {"cluster_id": 1}, "members": members})

    def health(self, healthy):
        listed = ",".join(self.etcd.endpoints)
        results = [{"endpoint": m.client_url, "health": m.name in healthy} for m in self.etcd.members]
        return [f"#kubeha:endpoints {listed}", "#kubeha:health", json.dumps(results)]

    def converged(self, name, members=None, healthy=None):
        """Facts of a member that runs with its current files."""
        node = self.cluster.host(name)
        pki = etcd_plan.pki_files(self.secrets, node)
        unit = etcd_plan.unit(self.etcd, name)
        responses = {}
        for file_name, (local, is_key) in sorted(pki.items()):
            path = f"{self.etcd.pki_dir}/{file_name}"
            responses[f"sha256sum {path} "] = f"{hashlib.sha256(local.read_bytes()).hexdigest()}  {path}"
            owner = "root" if file_name.startswith("admin-client") else "etcd"
            responses.update(stat_response(path, owner, "-rw-------" if is_key else "-rw-r--r--"))
        responses["sha256sum /etc/systemd/system/etcd.service "] = (
            f"{hashlib.sha256(unit.encode()).hexdigest()}  /etc/systemd/system/etcd.service")
        responses.update(stat_response(self.etcd.wal_dir, "etcd", "drwx------"))
        responses["--property SubState etcd.service"] = ["Id=etcd.service", "SubState=running"]
        responses[f"cat {paths.ETCD_APPLIED_FILE}"] = etcd_plan.applied_for(unit, pki)
        responses[f"cat {paths.ETCD_ENV_FILE}"] = ["INITIAL_CLUSTER_STATE=new"]
        responses["member list -w json"] = self.member_json(members or self.names)
        responses["endpoint health -w json"] = self.health(healthy or self.names)
        return {**responses, **LINUX}

    def fresh(self, members=None, healthy=None):
        """Facts of a machine where etcd was never installed (the cluster may answer)."""
        responses = dict(LINUX)
        if members:
            responses["member list -w json"] = self.member_json(members)
            responses["endpoint health -w json"] = self.health(healthy or members)
        return responses


@pytest.fixture(scope="module")
def lab(workdir):
    return LabHa(workdir)


def test_a_fresh_cluster_is_installed_and_bootstrapped_on_the_etcd_hosts_only(workdir):
    plan = run(workdir, "lab-ha", {"*": LINUX}).plan
    etcd_hosts = ["cp1", "cp2", "cp3"]
    assert plan, "the stage planned nothing"
    assert all(hosts in ([], etcd_hosts) for _, hosts in plan), plan
    changes = changed(plan, ("",))
    for words in ("Download etcd", "Unpack etcd", "Link etcdctl", "User etcd", "etcd PKI: peer.key",
                  "Write the etcd unit", "etcd owns", "Enable etcd", "etcd: decide", "etcd: start"):
        assert any(name.startswith(words) and hosts == etcd_hosts for name, hosts in changes.items()), words
    # nothing to join or restart in a cluster that does not run yet
    assert not changed(plan, ("etcd: add", "etcd: restart"))


def test_a_converged_cluster_plans_no_change_to_files_or_membership(workdir, lab):
    responses = {name: lab.converged(name) for name in lab.names}
    plan = run(workdir, "lab-ha", responses).plan
    assert {name for name, _ in plan if name.startswith(STATE_OPS)} >= {
        "etcd: decide whether the cluster is new", "etcd: restart a changed member, keeping the quorum"}
    assert changed(plan, STATE_OPS) == {}


def test_a_changed_certificate_restarts_that_member(workdir, lab):
    responses = {name: lab.converged(name) for name in lab.names}
    responses["cp2"][f"cat {paths.ETCD_APPLIED_FILE}"] = "an-older-fingerprint"
    plan = run(workdir, "lab-ha", responses).plan
    assert changed(plan, MEMBERSHIP_OPS) == {"etcd: restart a changed member, keeping the quorum": ["cp2"]}


def test_a_missing_member_is_added_through_a_healthy_member(workdir, lab):
    two = ["cp1", "cp2"]
    responses = {name: lab.converged(name, members=two) for name in two}
    responses["cp3"] = lab.fresh(members=two)
    plan = run(workdir, "lab-ha", responses).plan
    assert changed(plan, MEMBERSHIP_OPS) == {"etcd: add a missing member through a healthy one": ["cp3"]}

    done = run(workdir, "lab-ha", responses, execute=True)
    adds = {node: [c for c in cmds if "member add" in c] for node, cmds in done.commands.items()}
    assert adds["cp1"] == adds["cp2"] == [], done.output[-3000:]
    (add,) = adds["cp3"]
    healthy = f"--endpoints={lab.etcd.member('cp1').client_url},{lab.etcd.member('cp2').client_url} "
    assert healthy in add and "member add cp3 --peer-urls=https://10.123.0.23:2380 --learner" in add


def test_a_stopped_host_does_not_stop_the_others(workdir, lab):
    responses = {name: lab.converged(name, healthy=["cp1", "cp2"]) for name in ("cp1", "cp2")}
    responses["cp3"] = {"": {"success": False, "stderr": "ssh: connect to host: No route to host"}}
    done = run(workdir, "lab-ha", responses, execute=True)
    output = done.output
    assert "@fake/cp3" in output and re.search(r"@fake/cp3.*(Error|error|failed)", output), output[-3000:]
    for node in ("cp1", "cp2"):
        assert not [c for c in done.commands.get(node, []) if c.startswith(("systemctl restart", "systemctl start"))
                    or "member " in c and "member list" not in c], done.commands.get(node)
    assert re.search(r"\[@fake/cp1\].*No changes", output), output[-3000:]


def test_stacked_etcd_gets_nothing_from_this_stage(workdir):
    plan = run(workdir, "topology-a", {"*": LINUX}).plan
    assert plan and changed(plan, ("",)) == {}
