"""Taking nodes out of the cluster: which node and etcd member each `remove:` entry is, and
whether removing them all is safe. Pure decisions on what the cluster reports; nothing here
touches a host (operations/removal.py reads the facts and acts).

An entry names a node by its name AND its address. Both must fit what the cluster reports:
- a Kubernetes node of that name must have that InternalIP, and no other node that address;
- an etcd member of that name must have its peer URL on that address, and no other member;
- the machine at that address, when it can be reached, must call itself by that name.
Anything else is refused before the run touches anything, so a typo never removes a node. An
entry that matches no node, no member and no machine is only reported: it names nothing that
exists (already removed, or a typo), and there is nothing to do.

etcd keeps its quorum at every step: the members the run adds (an etcd host in `hosts` that is
not a member yet joins earlier in the same run) come first, then the members removed, dead ones
first; every step must keep a healthy majority, and the membership left must be odd.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Removal:
    """One `remove:` entry as the cluster knows it."""
    name: str
    address: str
    node: dict | None  # the node's entry of facts.kubernetes.ClusterNodes, None: not a node
    member: dict | None  # its etcd member (facts.etcd.EtcdMembers' entry, with "healthy"), None: not one
    reachable: bool  # this run is connected to the machine

    @property
    def is_control_plane(self):
        return bool(self.node and self.node.get("control_plane"))

    def __str__(self):
        parts = []
        if self.node:
            parts.append("control plane" if self.is_control_plane else "node")
        if self.member:
            parts.append(f"etcd member {self.member['id']}")
        what = " and ".join(parts) or "no node, no etcd member"
        return f"{self.name} ({self.address}: {what}{'' if self.reachable else '; not reachable'})"


@dataclass(frozen=True)
class RemovalPlan:
    removals: tuple
    refusals: tuple  # why the run must not go on; empty when it may
    notes: tuple  # entries that name nothing, said so


def peer_address(member):
    """The address of an etcd member's (first) peer URL, or None."""
    urls = member.get("peer_urls") or []
    return urlsplit(urls[0]).hostname if urls else None


def matching_node(nodes, entry):
    """The node of `nodes` (ClusterNodes) named `entry.name` with InternalIP `entry.address`, else None."""
    found = (nodes or {}).get(entry.name)
    return found if found and found.get("internal_ip") == entry.address else None


def matching_member(members, entry):
    """The etcd member named `entry.name` whose peer URL is on `entry.address` (a member added but
    never started has no name: its address is enough), else None."""
    for member in members or []:
        if peer_address(member) == entry.address and member.get("name") in (entry.name, ""):
            return member
    return None


def joining(members, wanted_members):
    """How many of the addresses `wanted_members` are no member yet: they join before the removal."""
    listed = {peer_address(m) for m in members}
    return len([address for address in wanted_members if address not in listed])


def identity_problems(entry, nodes, members, hostname):
    """Why `entry` does not name one node consistently: messages, empty when it does."""
    problems = []
    named = (nodes or {}).get(entry.name)
    if named and named.get("internal_ip") != entry.address:
        problems.append(f"no node {entry.name} with address {entry.address}: node {entry.name} has address "
                        f"{named.get('internal_ip')}")
    for other, found in sorted((nodes or {}).items()):
        if other != entry.name and found.get("internal_ip") == entry.address:
            problems.append(f"no node {entry.name} with address {entry.address}: {entry.address} is node {other}")
    for member in members or []:
        address, name = peer_address(member), member.get("name")
        if name == entry.name and address != entry.address:
            problems.append(f"no etcd member {entry.name} with address {entry.address}: member {entry.name} "
                            f"({member['id']}) is on {address}")
        elif address == entry.address and name not in (entry.name, ""):
            problems.append(f"no etcd member {entry.name} with address {entry.address}: {entry.address} is "
                            f"member {name} ({member['id']})")
    if hostname is not None and hostname.split(".")[0] != entry.name:
        problems.append(f"the machine at {entry.address} calls itself {hostname}, not {entry.name}: it is not "
                        "the node to remove")
    return problems


def quorum_problems(members, removed_ids, added):
    """Why removing the members `removed_ids` (after adding `added` new ones) would lose etcd's
    quorum or leave an even membership: messages, empty when it is safe.

    `members`: the voting members now, each with "id", "name" and "healthy"."""
    voting = {m["id"]: bool(m.get("healthy")) for m in members}
    removing = [i for i in removed_ids if i in voting]
    if not removing:
        return []
    names = ", ".join(sorted(m["name"] or m["id"] for m in members if m["id"] in removing))
    current = dict(voting)
    for index in range(added):
        current[f"added-{index}"] = True  # a member that joins is healthy once promoted
        if _healthy(current) < _quorum(current):
            return [f"adding the new etcd members before removing {names} would lose the quorum: "
                    f"{_healthy(current) - 1} of {len(current) - 1} members are healthy"]
    for member_id in sorted(removing, key=lambda i: voting[i]):  # dead members first
        del current[member_id]
        if not current:
            return [f"removing {names} would leave etcd without any member"]
        if _healthy(current) < _quorum(current):
            return [f"removing {names} would leave etcd without a majority: {_healthy(current)} of the "
                    f"{len(current)} members left would be healthy, {_quorum(current)} are needed; bring the "
                    "stopped members back first"]
    if len(current) % 2 == 0:
        return [f"removing {names} would leave {len(current)} etcd members, an even number: a majority of "
                f"them survives no more failures than {len(current) - 1} would; add a replacement etcd host in "
                "the same run, or remove one more"]
    return []


def _quorum(members):
    return len(members) // 2 + 1


def _healthy(members):
    return sum(members.values())


def plan(entries, nodes, members, wanted_members, hostnames):
    """What removing `entries` (cluster.model.Host of `remove:`) means, and whether it may go on.

    + nodes: ClusterNodes as the API reports it; None when the API does not answer
    + members: the etcd members, each with "healthy"; None when etcd does not answer
    + wanted_members: addresses of the members the cluster file keeps (etcd hosts, or the control
      planes with stacked etcd); those not in the membership yet join earlier in the run
    + hostnames: {entry name: what the machine calls itself (None: it does not say)}, only for the
      machines reachable
    """
    refusals, notes, removals = [], [], []
    if nodes is None:
        refusals.append("the API does not answer: cannot check which nodes "
                        f"{', '.join(e.name for e in entries)} are; nothing is removed")
    if members is None:
        refusals.append("no etcd member answers with a quorum: cannot check that the removal keeps one; "
                        "nothing is removed")
    for entry in entries:
        refusals += identity_problems(entry, nodes, members, hostnames.get(entry.name))
        removal = Removal(entry.name, entry.address, matching_node(nodes, entry), matching_member(members, entry),
                          entry.name in hostnames)
        removals.append(removal)
        if not removal.node and not removal.member and not removal.reachable:
            notes.append(f"{entry.name} ({entry.address}) is no node, no etcd member, and its machine cannot be "
                         "reached: nothing to remove (removed already?)")
    if members is not None:
        voting = [m for m in members if not m.get("is_learner")]
        refusals += quorum_problems(voting, [r.member["id"] for r in removals if r.member],
                                    joining(members, wanted_members))
    return RemovalPlan(tuple(removals), tuple(refusals), tuple(notes))
