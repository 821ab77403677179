"""The etcd membership operations, run in-process against faked facts (tests/support.py:
FakeHosts): scenarios over three members, too entangled for one JSON case each.

Each test gives three pyinfra hosts canned facts (what its etcd data dir, its service and the
cluster say), runs an operation's body for one host and looks at the commands it would send.
`executing` says whether the body runs at execution time (after the plan) or while planning.
"""

import pytest
from pyinfra.facts.files import Directory, FileContents, Sha256File
from pyinfra.facts.systemd import SystemdStatus

from cluster import paths
from cluster.etcd import Etcd, Member
from facts.etcd import EtcdHealth, EtcdLogLost, EtcdMembers
from operations import etcd as ops
from support import FakeHosts, shell_syntax_ok

ETCD = Etcd(
    members=tuple(Member(f"cp{i}", f"10.9.0.{i}", f"@fake/cp{i}") for i in (1, 2, 3)),
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


def host_facts(members=None, health=None, data=True, active=True, env=None, applied=None, log_lost=False):
    """What one member's facts say."""
    files = {paths.ETCD_ENV_FILE: env, paths.ETCD_APPLIED_FILE: [applied] if applied else None}
    return {
        EtcdMembers: members,
        EtcdHealth: lambda endpoints, **tls: {url: (health or {}).get(url, False) for url in endpoints},
        EtcdLogLost: log_lost,
        SystemdStatus: {"etcd.service": active},
        Directory: lambda path: (DIRECTORY if data else None) if path == WAL else None,
        FileContents: lambda path: files.get(path),
        Sha256File: None,
    }


def members_with(**per_host):
    """Three fake etcd hosts; those not named are converged-looking defaults."""
    return FakeHosts({name: per_host.get(name, host_facts()) for name in ("cp1", "cp2", "cp3")})


ALL_UP = {URL["cp1"]: True, URL["cp2"]: True, URL["cp3"]: True}
THREE = [member(1), member(2), member(3)]


def converged(**changes):
    facts = {"members": THREE, "health": ALL_UP, "applied": "same", "env": ["INITIAL_CLUSTER_STATE=new"]}
    return host_facts(**{**facts, **changes})


# decide_bootstrap / bootstrap_decision

def test_fresh_cluster_is_decided_new_with_every_member():
    hosts = members_with(**{n: host_facts(data=False, active=False) for n in ("cp1", "cp2", "cp3")})
    commands = hosts.run(ops.decide_bootstrap, "cp2", etcd=ETCD, member="cp2")
    assert commands[1] == "upload /etc/etcd/.initial-cluster.env.kubeha-new"
    env = hosts.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]
    assert "INITIAL_CLUSTER_STATE=new\n" in env
    assert ("INITIAL_CLUSTER=cp1=https://10.9.0.1:2380,cp2=https://10.9.0.2:2380,"
            "cp3=https://10.9.0.3:2380\n") in env


def test_no_bootstrap_while_another_member_holds_data():
    hosts = members_with(cp1=host_facts(data=False, active=False), cp2=host_facts(data=True, active=False),
                      cp3=host_facts(data=False, active=False))
    commands = hosts.run(ops.decide_bootstrap, "cp1", etcd=ETCD, member="cp1")
    assert commands == []


def test_no_bootstrap_when_the_cluster_answers_or_this_member_has_data():
    answering = members_with(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=False, active=False))
    assert answering.run(ops.decide_bootstrap, "cp3", etcd=ETCD, member="cp3") == []
    with_data = members_with(cp1=host_facts(data=True, active=False))
    assert with_data.run(ops.decide_bootstrap, "cp1", etcd=ETCD, member="cp1") == []


def test_an_unreachable_member_is_left_out_of_the_bootstrap_while_a_majority_remains(caplog):
    fresh = {n: host_facts(data=False, active=False) for n in ("cp1", "cp2", "cp3")}
    hosts = members_with(**fresh)
    hosts.down("cp3")
    with hosts.context("cp1"):
        new, why = ops.bootstrap_decision(ETCD, "cp1")
    assert new, why
    assert "not reachable" in caplog.text and "cp3" in caplog.text
    hosts.down("cp2")
    with hosts.context("cp1"):
        new, why = ops.bootstrap_decision(ETCD, "cp1")
    assert not new and "needs 2" in why


# start

def test_start_bootstraps_a_new_cluster_and_waits_for_health():
    hosts = members_with(cp1=host_facts(data=False, active=False, env=["INITIAL_CLUSTER_STATE=new"]))
    commands = hosts.run(ops.start, "cp1", etcd=ETCD, member="cp1", applied="h1")
    assert commands[0] == "systemctl start --no-block etcd"
    assert f"--endpoints={URL['cp1']}" in commands[1] and "endpoint health" in commands[1]
    assert commands[2] == f"echo h1 > {paths.ETCD_APPLIED_FILE}"
    shell_syntax_ok(commands)


def test_start_in_the_plan_predicts_the_bootstrap_before_the_decision_is_written():
    fresh = {n: host_facts(data=False, active=False) for n in ("cp1", "cp2", "cp3")}
    commands = members_with(**fresh).run(ops.start, "cp2", executing=False, etcd=ETCD, member="cp2", applied="h")
    assert commands[0] == "systemctl start --no-block etcd"


def test_start_brings_back_a_stopped_member_that_holds_data():
    hosts = members_with(cp2=host_facts(members=None, data=True, active=False))
    assert hosts.run(ops.start, "cp2", etcd=ETCD, member="cp2", applied="h")[0].startswith("systemctl start")


def test_start_leaves_running_members_and_joiners_alone():
    assert members_with(cp1=converged()).run(ops.start, "cp1", etcd=ETCD, member="cp1", applied="same") == []
    joiner = members_with(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=False, active=False))
    assert joiner.run(ops.start, "cp3", etcd=ETCD, member="cp3", applied="h") == []
    removed = members_with(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=True, active=False))
    assert removed.run(ops.start, "cp3", etcd=ETCD, member="cp3", applied="h") == []


# join

def test_join_is_a_noop_for_a_member():
    assert members_with(cp2=converged()).run(ops.join, "cp2", etcd=ETCD, member="cp2", applied="same") == []


def test_a_missing_member_is_added_as_a_learner_through_the_healthy_members():
    hosts = members_with(cp3=host_facts(members=THREE[:2], health={URL["cp1"]: True, URL["cp2"]: True},
                                     data=False, active=False))
    commands = hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h3")
    assert commands[:2] == ["systemctl stop etcd", LEFTOVERS_ASIDE]
    add = commands[2]
    assert f"--endpoints={URL['cp1']},{URL['cp2']} " in add
    assert "member add cp3 --peer-urls=https://10.9.0.3:2380 --learner ||" in add
    env = hosts.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]
    assert "INITIAL_CLUSTER_STATE=existing\n" in env
    assert ("INITIAL_CLUSTER=cp1=https://10.9.0.1:2380,cp2=https://10.9.0.2:2380,"
            "cp3=https://10.9.0.3:2380\n") in env
    rest = commands[commands.index("systemctl start --no-block etcd"):]
    assert "member promote" in rest[1] and '$4 == "https://10.9.0.3:2380"' in rest[1]
    assert f"--endpoints={URL['cp3']} " in rest[2] and "endpoint health" in rest[2]
    assert rest[3] == f"echo h3 > {paths.ETCD_APPLIED_FILE}"
    shell_syntax_ok(commands)


def test_only_healthy_members_carry_the_membership_change():
    hosts = members_with(cp3=host_facts(members=THREE[:2], health={URL["cp1"]: False, URL["cp2"]: True},
                                     data=False, active=False))
    add = next(c for c in hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h") if "member add" in c)
    assert f"--endpoints={URL['cp2']} " in add and URL["cp1"] not in add


def test_a_replaced_machine_is_removed_and_added_again():
    hosts = members_with(cp3=host_facts(members=THREE, health={URL["cp1"]: True, URL["cp2"]: True},
                                     data=False, active=False))
    commands = hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert "member remove a3 ||" in commands[0]
    assert URL["cp3"] not in commands[0]
    # systemd restarts the failing unit meanwhile: once removed, such a start bootstraps a data
    # dir of its own, which the learner must not start from (found by the integration tier)
    assert commands[1:3] == ["systemctl stop etcd", LEFTOVERS_ASIDE]
    assert "member add cp3 --peer-urls=https://10.9.0.3:2380 --learner ||" in commands[3]
    shell_syntax_ok(commands)
    env = hosts.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]
    assert env.count("https://10.9.0.3:2380") == 1


def test_a_removed_member_holding_data_moves_it_aside_then_joins():
    hosts = members_with(cp3=host_facts(members=THREE[:2], health=ALL_UP, data=True, active=True))
    commands = hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert commands[0] == "systemctl stop etcd"
    assert commands[1].startswith("mv /var/lib/kubeha-etcd/member /var/lib/kubeha-etcd/member.removed-")
    assert "member add cp3" in commands[2]
    shell_syntax_ok(commands)


def test_an_added_but_unstarted_learner_is_started_and_promoted_without_a_second_add():
    members = THREE[:2] + [member(3, started=False, learner=True)]
    hosts = members_with(cp3=host_facts(members=members, health=ALL_UP, data=False, active=False))
    commands = hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert not any("member add" in c or "member remove" in c for c in commands)
    assert any("member promote" in c for c in commands)


def test_a_first_bootstrap_member_that_was_down_starts_into_the_cluster():
    members = THREE[:2] + [member(3, started=False)]
    hosts = members_with(cp3=host_facts(members=members, health=ALL_UP, data=False, active=False))
    commands = hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert not any("member add" in c or "member promote" in c for c in commands)
    assert "systemctl start --no-block etcd" in commands
    assert "INITIAL_CLUSTER_STATE=existing" in hosts.uploads["/etc/etcd/.initial-cluster.env.kubeha-new"]


def test_join_without_quorum_is_quiet_in_the_plan_and_fails_only_this_member_when_running():
    hosts = members_with(cp3=host_facts(members=None, data=False, active=False))
    assert hosts.run(ops.join, "cp3", executing=False, etcd=ETCD, member="cp3", applied="h") == []
    commands = hosts.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert len(commands) == 1 and commands[0].endswith("exit 1")
    no_healthy = members_with(cp3=host_facts(members=THREE[:2], health={}, data=False, active=False))
    commands = no_healthy.run(ops.join, "cp3", etcd=ETCD, member="cp3", applied="h")
    assert len(commands) == 1 and "no healthy etcd member" in commands[0]


# restart_changed

def test_no_restart_when_nothing_changed_or_not_running():
    assert members_with(cp1=converged()).run(ops.restart_changed, "cp1", etcd=ETCD, member="cp1",
                                        applied="same") == []
    stopped = members_with(cp1=converged(active=False))
    assert stopped.run(ops.restart_changed, "cp1", etcd=ETCD, member="cp1", applied="new") == []


def test_a_changed_member_restarts_and_waits_until_healthy():
    commands = members_with(cp2=converged()).run(ops.restart_changed, "cp2", etcd=ETCD, member="cp2",
                                            applied="new")
    assert commands[0] == "systemctl restart etcd"
    assert f"--endpoints={URL['cp2']} " in commands[1] and "endpoint health" in commands[1]
    assert commands[2] == f"echo new > {paths.ETCD_APPLIED_FILE}"


def test_a_restart_that_would_break_the_quorum_is_put_off(caplog):
    hosts = members_with(cp1=converged(health={URL["cp1"]: True, URL["cp2"]: True, URL["cp3"]: False}))
    assert hosts.run(ops.restart_changed, "cp1", etcd=ETCD, member="cp1", applied="new") == []
    assert "put off" in caplog.text


# owned

@pytest.mark.parametrize("count, quorum", [(1, 1), (3, 2), (5, 3)])
def test_quorum(count, quorum):
    etcd = Etcd(members=tuple(Member(f"m{i}", f"10.9.0.{i}", f"m{i}") for i in range(count)), token="t")
    assert etcd.quorum == quorum
