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
    """The cluster node (cluster.model.Host) of a pyinfra host, by default the current one."""
    return cluster().host((pyinfra_host or host).data.node_name)


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

