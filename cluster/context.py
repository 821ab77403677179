"""What a task needs to know while pyinfra runs it: the cluster, this host's node, the others,
and what the facts that cannot change during a run say about a host (its system, architecture,
whether it is a container), so the stages may branch on them while planning.

The run's cluster is read here (`cluster()`) by the tasks, which hand it and the node down to
the operations and to the planning functions of cluster/ as parameters.

Hosts are matched to cluster nodes by the `node_name` data the inventory gives each host, so
the same tasks work with real hosts and with pyinfra's @fake connector.
"""

from functools import lru_cache

from pyinfra import host, inventory, state
from pyinfra.facts.server import Arch, LinuxDistribution

from cluster import load_checked
from cluster.secrets import ClusterSecrets
from cluster.system import ARCH_NAMES, family_of
from facts.host import Container
from facts.kubernetes import KubeNodeState


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


def arch(pyinfra_host=None):
    """This host's architecture in release-file terms (amd64, arm64); None if unsupported."""
    return ARCH_NAMES.get((pyinfra_host or host).get_fact(Arch))


def os_release(pyinfra_host=None):
    """(ID, VERSION_ID) from /etc/os-release, lower-cased; ("", "") when unreadable."""
    meta = (pyinfra_host or host).get_fact(LinuxDistribution)["release_meta"]
    return meta.get("ID", "").strip().lower(), meta.get("VERSION_ID", "").strip().strip('"')


def os_family(pyinfra_host=None):
    """debian or rhel for a supported system, None for anything else (the host checks refuse it)."""
    return family_of(*os_release(pyinfra_host))


def container(pyinfra_host=None):
    """The container technology the host runs in (systemd-nspawn, lxc, docker...), or None."""
    return (pyinfra_host or host).get_fact(Container)


def reachable(node_name):
    """The pyinfra host of this node if this run is connected to it, else None (a machine that is
    down, or that pyinfra could not reach, is not among the active hosts)."""
    return next((h for h in inventory if h.data.get("node_name") == node_name and h in state.active_hosts), None)


def reachable_hosts_with_role(role):
    """Hosts of a role that this run is connected to (a stopped machine is left out)."""
    return [h for h in hosts_with_role(role) if h in state.active_hosts]


def joined_control_planes():
    """Reachable control planes that already run the control plane, in the file's order.

    Read when called: inside an operation that is the state just before it runs.
    """
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
