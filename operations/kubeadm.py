"""kubeadm's cluster actions: init, bootstrap tokens, joins.

Each reads the nodes' state when it runs (facts are read again just before an operation
executes), so a node that is already part of the cluster is never initialised or joined twice,
and the plan shown by `--dry` names exactly the actions a run would take.
"""

import shlex
import time

import gevent
from pyinfra import host, state
from pyinfra.api import operation

from cluster import paths
from cluster.context import anchor_control_plane, joined_control_planes, reachable_hosts_with_role
from facts.kubernetes import BootstrapTokenIds, KubeNodeState
from operations.failure import fail

API_WAIT_SECONDS = 120


def _joined(pyinfra_host=None):
    return bool(((pyinfra_host or host).get_fact(KubeNodeState) or {}).get("kubelet_conf"))


@operation()
def init(config_path):
    """`kubeadm init` on this node, unless it or any other control plane already runs the cluster."""
    name = host.data.node_name
    if _joined():
        host.noop(f"{name} is already part of the cluster")
        return
    running = joined_control_planes()
    if running:
        host.noop(f"the cluster already runs on {running[0].data.node_name}: {name} joins it instead")
        return
    # a failed init is rolled back, so the next run starts clean instead of finding half a node
    yield (f"kubeadm init --config {shlex.quote(config_path)} --skip-token-print "
           f"|| {{ kubeadm reset --force >/dev/null 2>&1; exit 1; }}")


def _waiting_to_join():
    return [h for role in ("control_plane", "worker") for h in reachable_hosts_with_role(role) if not _joined(h)]


@operation()
def bootstrap_token(cluster, token):
    """Make sure the join token exists while a node waits to join; on the anchor control plane."""
    if host != anchor_control_plane():
        host.noop("tokens are made on the anchor control plane")
        return
    if not _joined():
        host.noop("kubeadm init makes the first token")
        return
    if not _waiting_to_join():
        host.noop("no node is waiting to join")
        return
    token_id = token.split(".", 1)[0]
    tokens = host.get_fact(BootstrapTokenIds, kubeconfig=paths.ADMIN_CONF)
    # right after init the API can take a moment to answer through its endpoint
    deadline = time.monotonic() + API_WAIT_SECONDS
    while tokens is None and state.is_executing and time.monotonic() < deadline:
        gevent.sleep(3)
        tokens = host.get_fact(BootstrapTokenIds, kubeconfig=paths.ADMIN_CONF)
    if tokens is None and state.is_executing:
        yield from fail(f"the API does not answer on {cluster.control_plane_endpoint} from "
                        f"{host.data.node_name}: cannot check the bootstrap token")
        return
    if token_id in (tokens or []):
        host.noop(f"bootstrap token {token_id} is valid")
        return
    yield (f"kubeadm token create {shlex.quote(token)} --ttl 2h0m0s "
           f"--kubeconfig {paths.ADMIN_CONF} >/dev/null")


@operation()
def join(cluster, node, config_path):
    """`kubeadm join` with the pinned CA, unless this node already joined (or is initialising)."""
    if _joined():
        host.noop(f"{node.name} is already part of the cluster")
        return
    if node == cluster.first_control_plane and not joined_control_planes():
        host.noop(f"{node.name} initialises the cluster")
        return
    yield (f"kubeadm join --config {shlex.quote(config_path)} "
           f"|| {{ kubeadm reset --force >/dev/null 2>&1; exit 1; }}")
