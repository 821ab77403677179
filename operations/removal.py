"""Taking the nodes of `remove:` out of the cluster (tasks/remove_nodes.py).

`removal_plan()` reads, while the run is planned (before anything on any host changes), what the
cluster says about each entry and refuses the whole run if one does not fit or the removal would
cost etcd its quorum (cluster/removal.py decides). The operations then act from the anchor
control plane (drain, delete the node), from an etcd member (remove the member), or on the
machine itself, and each reads the cluster again when it runs: a removal that is done is not done
twice, and an entry that names no node does nothing.
"""

import gevent.lock
from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import File
from pyinfra.facts.server import Hostname

from cluster import etcd, kube_vip, paths, removal
from cluster.context import anchor_control_plane, has_role, joined_control_planes, reachable, \
    reachable_hosts_with_role
from facts.etcd import EtcdHealth, EtcdMembers, StackedEtcdMembers, stacked_etcdctl
from facts.kubernetes import ClusterNodes
from facts.loadbalancer import VipHolder
from operations.drain import drain_command
from operations.etcd import CHANGE_ATTEMPTS
from operations.failure import fail, retry
from operations.kubectl import KUBECTL

VIP_WAIT_SECONDS = 60
# etcdctl in kubeadm's etcd pod: its own client URL, and the files as the pod sees them
STACKED_ENDPOINTS = [f"https://127.0.0.1:{paths.ETCD_CLIENT_PORT}"]

_plan_lock = gevent.lock.RLock()
_plan = []  # the plan of this run, once read


# ---- what the cluster says about the entries ------------------------------------------------------

def _external_members(cluster, pyinfra_host):
    """The external etcd's members read from this member's host, each with "healthy"; None when
    it cannot tell (no member answers, or etcd is not installed there yet)."""
    external = etcd.from_cluster(cluster, {})
    members = pyinfra_host.get_fact(EtcdMembers, endpoints=external.endpoints, **external.tls)
    if members is None:
        return None
    urls = [url for m in members for url in m["client_urls"]]
    health = pyinfra_host.get_fact(EtcdHealth, endpoints=urls, **external.tls) if urls else {}
    return [{**m, "healthy": any(health.get(url) for url in m["client_urls"])} for m in members]


def membership_reader(cluster):
    """The host etcd's membership is read and changed from: with external etcd the first
    reachable member of the file that answers, with stacked etcd the anchor control plane.
    Returns (host or None, members or None)."""
    if cluster.etcd.topology == "stacked":
        anchor = anchor_control_plane()
        if anchor is None or anchor not in joined_control_planes():
            return None, None
        return anchor, anchor.get_fact(StackedEtcdMembers, node=anchor.data.node_name, kubeconfig=paths.ADMIN_CONF,
                                       endpoints=STACKED_ENDPOINTS, **etcd.layout(cluster).tls)
    for candidate in reachable_hosts_with_role("etcd"):
        members = _external_members(cluster, candidate)
        if members is not None:
            return candidate, members
    return None, None


def _read_plan(cluster):
    entries = cluster.removals
    hostnames = {e.name: (reachable(e.name).get_fact(Hostname) or "").strip() or None
                 for e in entries if reachable(e.name)}
    if not reachable_hosts_with_role("control_plane"):  # a cluster may run, but nothing can tell
        return removal.plan(entries, None, None, [], hostnames)
    if not joined_control_planes():  # no cluster runs: only the machines are checked
        return removal.plan(entries, {}, [], [], hostnames)
    nodes = anchor_control_plane().get_fact(ClusterNodes, kubeconfig=paths.ADMIN_CONF)
    _, members = membership_reader(cluster)
    return removal.plan(entries, nodes, members, kept_member_addresses(cluster), hostnames)


def kept_member_addresses(cluster):
    """The addresses of the etcd members the cluster file keeps (cluster/etcd.py member_nodes)."""
    return [h.address for h in etcd.member_nodes(cluster)]


def removal_plan(cluster):
    """The removal of this run, read once while the run is planned. Raises PyinfraError naming
    every reason it must not go on: then no host is touched."""
    with _plan_lock:
        if not _plan:
            found = _read_plan(cluster)
            _plan.append(found)
            for entry in found.removals:
                logger.info(f"--> Removing {entry}")
                if not entry.reachable and (entry.node or entry.member):
                    logger.warning(f"    {entry.name} cannot be reached: it is taken out of the cluster, its machine "
                                   "is not cleaned (skipped); reset it before using it again")
            for note in found.notes:
                logger.warning(f"    {note}")
    found = _plan[0]
    if found.refusals:
        raise PyinfraError("the removal is refused, nothing was changed:\n  - " + "\n  - ".join(found.refusals))
    return found


# ---- the operations -----------------------------------------------------------------------------

def _nodes_or_fail(node, what):
    nodes = host.get_fact(ClusterNodes, kubeconfig=paths.ADMIN_CONF)
    if nodes is None:
        return None, fail(f"the API does not answer from {node.name}: cannot {what}")
    return nodes, None


@operation()
def drain(node, entries):
    """Drain each entry's node, from the anchor control plane. A node whose machine cannot be
    reached is not drained (its kubelet would never confirm an eviction): its pods are deleted
    with the node."""
    if not has_role("control_plane") or host != anchor_control_plane():
        host.noop("nodes are drained from the anchor control plane")
        return
    nodes, failing = _nodes_or_fail(node, "drain the nodes being removed")
    if failing:
        yield from failing
        return
    found = [entry for entry in entries if removal.matching_node(nodes, entry)]
    for entry in found:
        if reachable(entry.name) is None:
            logger.warning(f"{host.print_prefix}{entry.name} cannot be reached: not drained, its pods go with its node")
    drained = [entry for entry in found if reachable(entry.name)]
    if not drained:
        host.noop("no node of remove: is left to drain")
        return
    # all announced first: pyinfra plans an operation only up to its first command
    for entry in drained:
        logger.info(f"{host.print_prefix}drain {entry.name}")
    for entry in drained:
        yield drain_command(entry.name)


@operation()
def hand_over_vip(cluster, node, act):
    """On a control plane being removed under kube-vip (`act`): its kube-vip goes first, and the
    removal waits until the VIP has left this machine, so another control plane holds it before
    this one's apiserver stops."""
    if not act:
        host.noop("no kube-vip of a removed control plane here")
        return
    vip = cluster.api.vip
    if not host.get_fact(File, path=kube_vip.MANIFEST) and not host.get_fact(VipHolder, vip=vip):
        host.noop("kube-vip does not run here")
        return
    logger.info(f"{host.print_prefix}stop kube-vip and wait until {vip} is held elsewhere")
    yield f"rm -f {kube_vip.MANIFEST}"
    yield retry(f"! ip -o addr show to {vip} | grep -q .", f"{vip} is still held by {node.name}",
                attempts=VIP_WAIT_SECONDS, delay=1)


@operation()
def remove_etcd_members(cluster, node, entries):
    """Remove the entries' etcd members, from the host membership_reader() names: only while the
    members left keep a healthy majority (cluster/removal.py), the dead ones first. etcd may refuse
    a change right after another one ("unhealthy cluster"): it is retried, and counts as done
    once the membership no longer lists the member."""
    external = cluster.etcd.topology == "external"
    if not has_role("etcd" if external else "control_plane"):
        host.noop("etcd's membership is changed from an etcd member")
        return
    reader, members = membership_reader(cluster)
    if host != reader:
        host.noop("etcd's membership is changed from one host" + (f" ({reader.data.node_name})" if reader else ""))
        return
    if members is None:
        yield from fail("no etcd member answers with a quorum: the members of remove: are not removed")
        return
    targets = [(e, m) for e, m in ((e, removal.matching_member(members, e)) for e in entries) if m]
    if not targets:
        host.noop("none of the nodes of remove: is an etcd member")
        return
    voting = [m for m in members if not m["is_learner"]]
    # the run's new members have joined by now; a --dry counts them as the run will
    problems = removal.quorum_problems(voting, [m["id"] for _, m in targets],
                                       removal.joining(members, kept_member_addresses(cluster)))
    if problems:
        yield from fail(problems[0])
        return
    targets.sort(key=lambda target: target[1]["healthy"])  # the dead ones first
    removed_ids = {member["id"] for _, member in targets}
    staying = [url for m in members if m["healthy"] and m["id"] not in removed_ids for url in m["client_urls"]]
    for entry, member in targets:
        logger.info(f"{host.print_prefix}remove etcd member {entry.name} ({member['id']})")
    for _, member in targets:
        remove = _etcdctl(cluster, node, staying, f"member remove {member['id']}")
        listed = f"{_etcdctl(cluster, node, staying, 'member list')} | grep -q -F '{member['id']}, '"
        yield retry(f"{{ {remove} || ! {listed}; }}", f"could not remove etcd member {member['id']}",
                    attempts=CHANGE_ATTEMPTS)


def _etcdctl(cluster, node, endpoints, args):
    """etcdctl ARGS on this host: to the members that stay (external etcd, the admin client), or in
    this control plane's etcd pod (stacked)."""
    if cluster.etcd.topology == "external":
        return etcd.from_cluster(cluster, {}).etcdctl(endpoints, args)
    return stacked_etcdctl(node.name, paths.ADMIN_CONF, STACKED_ENDPOINTS, **etcd.layout(cluster).tls, args=args)


@operation()
def delete_nodes(node, entries):
    """Delete each entry's node, from the anchor control plane; after the machine's reset, so no
    kubelet registers it again."""
    if not has_role("control_plane") or host != anchor_control_plane():
        host.noop("nodes are deleted from the anchor control plane")
        return
    nodes, failing = _nodes_or_fail(node, "delete the nodes being removed")
    if failing:
        yield from failing
        return
    found = [entry for entry in entries if removal.matching_node(nodes, entry)]
    if not found:
        host.noop("no node of remove: is left")
        return
    for entry in found:
        logger.info(f"{host.print_prefix}delete node {entry.name}")
    for entry in found:
        yield f"{KUBECTL} delete node {entry.name}"
