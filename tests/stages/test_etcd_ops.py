"""The etcd membership operations, run in-process against faked facts.

Each test builds three pyinfra hosts, gives each one canned facts (what its etcd data dir,
its service and the cluster say), runs an operation's body for one host and looks at the
commands it would send. `executing` says whether the body runs at execution time (after
the plan) or while planning.
"""

import subprocess

import pytest
from pyinfra.api import Config, FileUploadCommand, Inventory, State
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, FileContents, Sha256File
from pyinfra.facts.systemd import SystemdStatus

from facts.etcd import EtcdHealth, EtcdMembers
from operations import etcd as ops

ETCD = ops.Etcd(
    members=tuple(ops.Member(f"cp{i}", f"10.9.0.{i}", f"@fake/cp{i}") for i in (1, 2, 3)),
    token="t1",
)
WAL = ETCD.wal_dir
URL = {f"cp{i}": f"https://10.9.0.{i}:2379" for i in (1, 2, 3)}
DIRECTORY = {"user": "etcd", "group": "etcd", "mode": 700}
LEFTOVERS_ASIDE = ("if [ -e /var/lib/kubeha-etcd/member ]; then mv /var/lib/kubeha-etcd/member "
                   "/var/lib/kubeha-etcd/member.removed-$(date +%Y%m%dT%H%M%S); fi")


def member(index, started=True, learner=False):
    return {
        "id": f"a{index}",
        "name": f"cp{index}" if started else "",
        "peer_urls": [f"https://10.9.0.{index}:2380"],
        "client_urls": [URL[f"cp{index}"]] if started else [],
        "is_learner": learner,
    }


def host_facts(members=None, health=None, data=True, active=True, env=None, applied=None):
    """What one host's facts say."""
    files = {ops.ENV_FILE: env, ops.APPLIED_FILE: [applied] if applied else None}
    return {
        EtcdMembers: members,
        EtcdHealth: health,
        SystemdStatus: {"etcd.service": active},
        Directory: {WAL: DIRECTORY if data else None},
        FileContents: files,
        Sha256File: {},
    }


class Cluster:
    """Three fake pyinfra hosts whose get_fact answers from a table."""

    def __init__(self, **per_host):
        self.inventory = Inventory(([f"@fake/cp{i}" for i in (1, 2, 3)], {}))
        self.state = State(self.inventory, Config())
        for host in self.inventory:
            facts = per_host.get(host.name.split("/")[1], host_facts())
            host.get_fact = self._answer(facts)

    @staticmethod
    def _answer(facts):
        def get_fact(cls, *args, **kwargs):
            value = facts.get(cls)
            if isinstance(value, dict) and "path" in kwargs:
                return value.get(kwargs["path"])
            if cls is EtcdHealth and value is not None:
                return {url: value.get(url, False) for url in kwargs["endpoints"]}
            return value if value is not None else ({} if cls is EtcdHealth else None)
        return get_fact

    def fail(self, name):
        self.state.failed_hosts.add(self.inventory.get_host(f"@fake/{name}"))

    def run(self, op, name, executing=True, **kwargs):
        """The commands `op` yields on host `name`, as strings (uploads as 'upload PATH')."""
        host = self.inventory.get_host(f"@fake/{name}")
        self.state.is_executing = executing
        self.uploads = {}
        commands = []
        with ctx_state.use(self.state), ctx_host.use(host):
            for command in op._inner(**kwargs):
                if isinstance(command, FileUploadCommand):
                    self.uploads[command.dest] = command.src.getvalue().decode()
                    commands.append(f"upload {command.dest}")
                else:
                    commands.append(str(command))
        return commands


ALL_UP = {URL["cp1"]: True, URL["cp2"]: True, URL["cp3"]: True}
THREE = [member(1), member(2), member(3)]


def converged(**changes):
    facts = {"members": THREE, "health": ALL_UP, "applied": "same", "env": ["INITIAL_CLUSTER_STATE=new"]}
    return host_facts(**{**facts, **changes})


def assert_shell_syntax(commands):
    for command in commands:
        if not command.startswith("upload "):
            subprocess.run(["sh", "-n", "-c", command], check=True)


# decide_bootstrap / bootstrap_decision

def test_fresh_cluster_is_decided_new_with_every_member():
    cluster = Cluster(**{n: host_facts(data=False, active=False) for n in ("cp1", "cp2", "cp3")})
    commands = cluster.run(ops.decide_bootstrap, "cp2", etcd=ETCD, member="cp2")
    assert commands[1] == "upload /etc/etcd/.initial-cluster.env.kubeha-new"
    env = cluster.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]
    assert "INITIAL_CLUSTER_STATE=new\n" in env
    assert ("INITIAL_CLUSTER=cp1=https://10.9.0.1:2380,cp2=https://10.9.0.2:2380,"
            "cp3=https://10.9.0.3:2380\n") in env


def test_no_bootstrap_while_another_member_holds_data():
    cluster = Cluster(cp1=host_facts(data=False, active=False), cp2=host_facts(data=True, active=False),
                      cp3=host_facts(data=False, active=False))
    commands = cluster.run(ops.decide_bootstrap, "cp1", etcd=ETCD, member="cp1")
    assert commands == []


def test_no_bootstrap_when_the_cluster_answers_or_this_member_has_data():
    answering = Cluster(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=False, active=False))
    assert answering.run(ops.decide_bootstrap, "cp3", etcd=ETCD, member="cp3") == []
    with_data = Cluster(cp1=host_facts(data=True, active=False))
    assert with_data.run(ops.decide_bootstrap, "cp1", etcd=ETCD, member="cp1") == []


def test_an_unreachable_member_is_left_out_of_the_bootstrap_while_a_majority_remains(caplog):
    fresh = {n: host_facts(data=False, active=False) for n in ("cp1", "cp2", "cp3")}
    cluster = Cluster(**fresh)
    cluster.fail("cp3")
    with ctx_state.use(cluster.state), ctx_host.use(cluster.inventory.get_host("@fake/cp1")):
        new, why = ops.bootstrap_decision(ETCD, "cp1")
    assert new, why
    assert "not reachable" in caplog.text and "cp3" in caplog.text
    cluster.fail("cp2")
    with ctx_state.use(cluster.state), ctx_host.use(cluster.inventory.get_host("@fake/cp1")):
        new, why = ops.bootstrap_decision(ETCD, "cp1")
    assert not new and "needs 2" in why


# start

def test_start_bootstraps_a_new_cluster_and_waits_for_health():
    cluster = Cluster(cp1=host_facts(data=False, active=False, env=["INITIAL_CLUSTER_STATE=new"]))
    commands = cluster.run(ops.start, "cp1", etcd=ETCD, member="cp1", applied="h1")
    assert commands[0] == "systemctl start --no-block etcd"
    assert f"--endpoints={URL['cp1']}" in commands[1] and "endpoint health" in commands[1]
    assert commands[2] == f"echo h1 > {ops.APPLIED_FILE}"
    assert_shell_syntax(commands)


def test_start_in_the_plan_predicts_the_bootstrap_before_the_decision_is_written():
    fresh = {n: host_facts(data=False, active=False) for n in ("cp1", "cp2", "cp3")}
    commands = Cluster(**fresh).run(ops.start, "cp2", executing=False, etcd=ETCD, member="cp2", applied="h")
    assert commands[0] == "systemctl start --no-block etcd"


def test_start_brings_back_a_stopped_member_that_holds_data():
    cluster = Cluster(cp2=host_facts(members=None, data=True, active=False))
    assert cluster.run(ops.start, "cp2", etcd=ETCD, member="cp2", applied="h")[0].startswith("systemctl start")


def test_start_leaves_running_members_and_joiners_alone():
    assert Cluster(cp1=converged()).run(ops.start, "cp1", etcd=ETCD, member="cp1", applied="same") == []
    joiner = Cluster(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=False, active=False))
    assert joiner.run(ops.start, "cp3", etcd=ETCD, member="cp3", applied="h") == []
    removed = Cluster(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=True, active=False))
    assert removed.run(ops.start, "cp3", etcd=ETCD, member="cp3", applied="h") == []


# join

def test_join_is_a_noop_for_a_member():
    assert Cluster(cp2=converged()).run(ops.join, "cp2", etcd=ETCD, member="cp2", applied="same") == []


def test_a_missing_member_is_added_as_a_learner_through_the_healthy_members():
    cluster = Cluster(cp3=host_facts(members=THREE[:2], health={URL["cp1"]: True, URL["cp2"]: True},
                                     data=False, active=False))
    commands = cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h3")
    assert commands[:2] == ["systemctl stop etcd", LEFTOVERS_ASIDE]
    add = commands[2]
    assert f"--endpoints={URL['cp1']},{URL['cp2']} " in add
    assert "member add cp3 --peer-urls=https://10.9.0.3:2380 --learner ||" in add
    env = cluster.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]
    assert "INITIAL_CLUSTER_STATE=existing\n" in env
    assert ("INITIAL_CLUSTER=cp1=https://10.9.0.1:2380,cp2=https://10.9.0.2:2380,"
            "cp3=https://10.9.0.3:2380\n") in env
    rest = commands[commands.index("systemctl start --no-block etcd"):]
    assert "member promote" in rest[1] and '$4 == "https://10.9.0.3:2380"' in rest[1]
    assert f"--endpoints={URL['cp3']} " in rest[2] and "endpoint health" in rest[2]
    assert rest[3] == f"echo h3 > {ops.APPLIED_FILE}"
    assert_shell_syntax(commands)


def test_only_healthy_members_carry_the_membership_change():
    cluster = Cluster(cp3=host_facts(members=THREE[:2], health={URL["cp1"]: False, URL["cp2"]: True},
                                     data=False, active=False))
    add = next(c for c in cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h") if "member add" in c)
    assert f"--endpoints={URL['cp2']} " in add and URL["cp1"] not in add


def test_a_replaced_machine_is_removed_and_added_again():
    cluster = Cluster(cp3=host_facts(members=THREE, health={URL["cp1"]: True, URL["cp2"]: True},
                                     data=False, active=False))
    commands = cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert "member remove a3 ||" in commands[0]
    assert URL["cp3"] not in commands[0]
    # systemd restarts the failing unit meanwhile: once removed, such a start bootstraps a data
    # dir of its own, which the learner must not start from (found by the integration tier)
    assert commands[1:3] == ["systemctl stop etcd", LEFTOVERS_ASIDE]
    assert "member add cp3 --peer-urls=https://10.9.0.3:2380 --learner ||" in commands[3]
    assert_shell_syntax(commands)
    env = cluster.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]
    assert env.count("https://10.9.0.3:2380") == 1


def test_a_removed_member_holding_data_moves_it_aside_then_joins():
    cluster = Cluster(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=True, active=True))
    commands = cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert commands[0] == "systemctl stop etcd"
    assert commands[1].startswith("mv /var/lib/kubeha-etcd/member /var/lib/kubeha-etcd/member.removed-")
    assert "member add cp3" in commands[2]
    assert_shell_syntax(commands)


def test_an_added_but_unstarted_learner_is_started_and_promoted_without_a_second_add():
    members = THREE[:2] + [member(3, started=False, learner=True)]
    cluster = Cluster(cp3=host_facts(members=members, health=ALL_UP, data=False, active=False))
    commands = cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert not any("member add" in c or "member remove" in c for c in commands)
    assert any("member promote" in c for c in commands)


def test_a_first_bootstrap_member_that_was_down_starts_into_the_cluster():
    members = THREE[:2] + [member(3, started=False)]
    cluster = Cluster(cp3=host_facts(members=members, health=ALL_UP, data=False, active=False))
    commands = cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert not any("member add" in c or "member promote" in c for c in commands)
    assert "systemctl start --no-block etcd" in commands
    assert "INITIAL_CLUSTER_STATE=existing" in cluster.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]


def test_join_without_quorum_is_quiet_in_the_plan_and_fails_only_this_member_when_running():
    cluster = Cluster(cp3=host_facts(members=None, data=False, active=False))
    assert cluster.run(ops.join, "cp3", executing=False, etcd=ETCD, member="cp3", applied="h") == []
    commands = cluster.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert len(commands) == 1 and commands[0].endswith("exit 1")
    no_healthy = Cluster(cp3=host_facts(members=THREE[:2], health={}, data=False, active=False))
    commands = no_healthy.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert len(commands) == 1 and "no healthy etcd member" in commands[0]


# restart_changed

def test_no_restart_when_nothing_changed_or_not_running():
    assert Cluster(cp1=converged()).run(ops.restart_changed, "cp1", etcd=ETCD, member="cp1",
                                        applied="same") == []
    stopped = Cluster(cp1=converged(active=False))
    assert stopped.run(ops.restart_changed, "cp1", etcd=ETCD, member="cp1", applied="new") == []


def test_a_changed_member_restarts_and_waits_until_healthy():
    commands = Cluster(cp2=converged()).run(ops.restart_changed, "cp2", etcd=ETCD, member="cp2",
                                            applied="new")
    assert commands[0] == "systemctl restart etcd"
    assert f"--endpoints={URL['cp2']} " in commands[1] and "endpoint health" in commands[1]
    assert commands[2] == f"echo new > {ops.APPLIED_FILE}"


def test_a_restart_that_would_break_the_quorum_is_put_off(caplog):
    cluster = Cluster(cp1=converged(health={URL["cp1"]: True, URL["cp2"]: True, URL["cp3"]: False}))
    assert cluster.run(ops.restart_changed, "cp1", etcd=ETCD, member="cp1", applied="new") == []
    assert "put off" in caplog.text


# owned

def test_owned_changes_only_the_files_with_another_owner():
    cluster = Cluster()
    host = cluster.inventory.get_host("@fake/cp1")
    owners = {"/p/a": {"user": "etcd", "group": "etcd"}, "/p/b": {"user": "root", "group": "root"}}
    host.get_fact = lambda cls, path: owners.get(path) if cls is File else None
    commands = cluster.run(ops.owned, "cp1", paths=["/p/a", "/p/b"], user="etcd", group="etcd")
    assert commands == ["chown etcd:etcd /p/b"]


@pytest.mark.parametrize("count, quorum", [(1, 1), (3, 2), (5, 3)])
def test_quorum(count, quorum):
    etcd = ops.Etcd(members=tuple(ops.Member(f"m{i}", f"10.9.0.{i}", f"m{i}") for i in range(count)), token="t")
    assert etcd.quorum == quorum
