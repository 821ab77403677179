"""Which node and etcd member each `remove:` entry is, and whether removing them keeps etcd's
quorum (cluster/removal.py): decided from what the cluster reports, before anything is touched."""

import pytest

from cluster.model import Host
from cluster.removal import identity_problems, matching_member, plan, quorum_problems


def entry(name, address):
    return Host(name=name, address=address, roles=(), ssh_user="kube", ssh_key="/k", ssh_port=22)


def node(address, control_plane=False):
    return {"ready": True, "control_plane": control_plane, "taints": [], "labels": {}, "kubelet_version": "v1.35.8",
            "internal_ip": address}


def member(index, name, address, healthy=True, learner=False):
    return {"id": f"{index:x}", "name": name, "peer_urls": [f"https://{address}:2380"],
            "client_urls": [f"https://{address}:2379"] if name else [], "is_learner": learner, "healthy": healthy}


NODES = {"cp1": node("10.0.0.21", True), "cp2": node("10.0.0.22", True), "cp3": node("10.0.0.23", True),
         "w1": node("10.0.0.31"), "w2": node("10.0.0.32")}
MEMBERS = [member(0xa1, "cp1", "10.0.0.21"), member(0xa2, "cp2", "10.0.0.22"), member(0xa3, "cp3", "10.0.0.23")]
EVERYONE = {name: name for name in NODES}


def test_a_worker_is_its_node_and_no_member():
    result = plan([entry("w2", "10.0.0.32")], NODES, MEMBERS, ["10.0.0.21", "10.0.0.22", "10.0.0.23"], EVERYONE)
    assert result.refusals == () and result.notes == ()
    (removal,) = result.removals
    assert removal.node == NODES["w2"] and removal.member is None and removal.reachable
    assert not removal.is_control_plane
    assert str(removal) == "w2 (10.0.0.32: node)"


def test_the_first_control_plane_with_its_replacement_joining_in_the_same_run():
    result = plan([entry("cp1", "10.0.0.21")], NODES, MEMBERS, ["10.0.0.22", "10.0.0.23", "10.0.0.24"], EVERYONE)
    assert result.refusals == ()
    (removal,) = result.removals
    assert removal.is_control_plane and removal.member["id"] == "a1"
    assert str(removal) == "cp1 (10.0.0.21: control plane and etcd member a1)"


def test_a_control_plane_whose_member_would_leave_an_even_number_is_refused():
    result = plan([entry("cp1", "10.0.0.21")], NODES, MEMBERS, ["10.0.0.22", "10.0.0.23"], EVERYONE)
    (refusal,) = result.refusals
    assert "removing cp1 would leave 2 etcd members, an even number" in refusal
    assert "add a replacement etcd host in the same run" in refusal


@pytest.mark.parametrize("typo, message", [
    (entry("w2", "10.0.0.33"), "no node w2 with address 10.0.0.33: node w2 has address 10.0.0.32"),
    (entry("w3", "10.0.0.32"), "no node w3 with address 10.0.0.32: 10.0.0.32 is node w2"),
    (entry("cp4", "10.0.0.21"), "no etcd member cp4 with address 10.0.0.21: 10.0.0.21 is member cp1 (a1)"),
])
def test_a_name_or_an_address_that_does_not_fit_refuses_the_whole_removal(typo, message):
    result = plan([entry("w1", "10.0.0.31"), typo], NODES, MEMBERS, ["10.0.0.21", "10.0.0.22", "10.0.0.23"],
                  EVERYONE)
    assert message in result.refusals


def test_a_member_listed_on_another_address_is_refused():
    problems = identity_problems(entry("cp1", "10.0.0.29"), {}, MEMBERS, None)
    assert problems == ["no etcd member cp1 with address 10.0.0.29: member cp1 (a1) is on 10.0.0.21"]


def test_a_machine_that_calls_itself_otherwise_is_not_the_node():
    problems = identity_problems(entry("w2", "10.0.0.32"), NODES, MEMBERS, "w7.lab.internal")
    assert problems == ["the machine at 10.0.0.32 calls itself w7.lab.internal, not w2: it is not the node to remove"]
    assert identity_problems(entry("w2", "10.0.0.32"), NODES, MEMBERS, "w2.lab.internal") == []


def test_an_entry_that_names_nothing_is_only_noted():
    result = plan([entry("w9", "10.0.0.39")], NODES, MEMBERS, ["10.0.0.21", "10.0.0.22", "10.0.0.23"], {})
    assert result.refusals == ()
    assert result.notes == ("w9 (10.0.0.39) is no node, no etcd member, and its machine cannot be reached: "
                            "nothing to remove (removed already?)",)


def test_a_dead_machine_is_still_its_node_and_member():
    result = plan([entry("cp3", "10.0.0.23")], NODES, [*MEMBERS[:2], member(0xa3, "cp3", "10.0.0.23", healthy=False)],
                  ["10.0.0.21", "10.0.0.22", "10.0.0.24"], {"cp1": "cp1", "cp2": "cp2"})
    assert result.refusals == ()
    (removal,) = result.removals
    assert removal.node and removal.member["id"] == "a3" and not removal.reachable
    assert str(removal) == "cp3 (10.0.0.23: control plane and etcd member a3; not reachable)"


def test_an_unstarted_member_matches_by_its_address():
    unstarted = member(0xa4, "", "10.0.0.24")
    assert matching_member([*MEMBERS, unstarted], entry("cp4", "10.0.0.24")) == unstarted


def test_nothing_is_decided_when_the_api_or_etcd_does_not_answer():
    result = plan([entry("w2", "10.0.0.32")], None, None, [], EVERYONE)
    assert any("the API does not answer" in r for r in result.refusals)
    assert any("no etcd member answers with a quorum" in r for r in result.refusals)


def five(healthy):
    return [member(index, f"m{index}", f"10.0.0.{index}", healthy=f"m{index}" in healthy) for index in range(1, 6)]


@pytest.mark.parametrize("members, removed, added, problem", [
    # a healthy majority stays at every step: fine
    (five({"m1", "m2", "m3", "m4", "m5"}), ["1", "2"], 0, None),
    # the dead ones go first, and the three left are healthy
    (five({"m1", "m2", "m3"}), ["4", "5"], 0, None),
    # two healthy of three left is still a majority
    (five({"m1", "m2", "m3"}), ["1", "4"], 0, None),
    # removing two healthy members while two are down: the majority is lost at the first step
    (five({"m1", "m2", "m3"}), ["1", "2"], 0, "without a majority: 2 of the 4 members left would be healthy, 3 are"),
    # removing one of five leaves four
    (five({"m1", "m2", "m3", "m4", "m5"}), ["5"], 0, "leave 4 etcd members, an even number"),
    # ... unless its replacement joins first
    (five({"m1", "m2", "m3", "m4", "m5"}), ["5"], 1, None),
    # the last member
    (five({"m1"})[:1], ["1"], 0, "without any member"),
    # not a member: nothing to check
    (five({"m1", "m2", "m3", "m4", "m5"}), ["9"], 0, None),
])
def test_quorum_at_every_step(members, removed, added, problem):
    problems = quorum_problems(members, removed, added)
    if problem is None:
        assert problems == []
    else:
        (found,) = problems
        assert problem in found, found


def test_a_majority_lost_is_refused_with_what_to_do():
    (problem,) = quorum_problems(five({"m1", "m2", "m3"}), ["1", "2"], 0)
    assert problem.startswith("removing m1, m2 would leave etcd without a majority")
    assert problem.endswith("bring the stopped members back first")
