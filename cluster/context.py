"""What a task needs to know while pyinfra runs it: the cluster, this host's node, the others.

Hosts are matched to cluster nodes by the `node_name` data the inventory gives each host, so
the same tasks work with real hosts and with pyinfra's @fake connector.
"""

from functools import lru_cache

from pyinfra import host, inventory

from cluster import load_checked
from cluster.secrets import ClusterSecrets


def cluster():
    return load_checked()


def node(pyinfra_host=None):
    """The cluster node (cluster.model.Host) of a pyinfra host, by default the current one; for a
    machine of `remove:`, its entry (no roles, so no stage but the removal's gives it work)."""
    name = (pyinfra_host or host).data.node_name
    return cluster().host(name) or cluster().removal(name)


def being_removed(pyinfra_host=None):
    """Whether this host is a machine of `remove:`."""
    return cluster().removal((pyinfra_host or host).data.node_name) is not None


def pyinfra_host(node_name):
    return next(h for h in inventory if h.data.get("node_name") == node_name)


def hosts_with_role(role):
    """pyinfra hosts of a role, in the cluster file's order."""
    return [pyinfra_host(n.name) for n in cluster().group(role)]


def has_role(role, pyinfra_host=None):
    return role in node(pyinfra_host).roles


def is_first_control_plane(pyinfra_host=None):
    return node(pyinfra_host) == cluster().first_control_plane


@lru_cache(maxsize=None)
def secrets():
    """The cluster's local secrets, created on first use."""
    return ClusterSecrets(cluster()).ensure()


ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def arch(pyinfra_host=None):
    """This host's architecture in release-file terms (amd64, arm64); None if unsupported."""
    from pyinfra.facts.server import Arch

    return ARCH_NAMES.get((pyinfra_host or host).get_fact(Arch))



def reachable(node_name):
    """The pyinfra host of this node if this run is connected to it, else None (a machine that is
    down, or that pyinfra could not reach, is not among the active hosts)."""
    from pyinfra import state

    return next((h for h in inventory if h.data.get("node_name") == node_name and h in state.active_hosts), None)


def reachable_hosts_with_role(role):
    """Hosts of a role that this run is connected to (a stopped machine is left out)."""
    from pyinfra import state

    return [h for h in hosts_with_role(role) if h in state.active_hosts]


def joined_control_planes():
    """Reachable control planes that already run the control plane, in the file's order.

    Read when called: inside an operation that is the state just before it runs.
    """
    from facts.kubernetes import KubeNodeState

    return [h for h in reachable_hosts_with_role("control_plane")
            if (h.get_fact(KubeNodeState) or {}).get("role") == "control_plane"]


def anchor_control_plane():
    """The control plane that cluster-wide actions (tokens, manifests, RBAC) run on: the first
    joined and reachable one, so the deploy still works when the first control plane is down;
    before any has joined, the first reachable one (the one that will run `kubeadm init`)."""
    joined = joined_control_planes()
    if joined:
        return joined[0]
    reachable = reachable_hosts_with_role("control_plane")
    return reachable[0] if reachable else None
