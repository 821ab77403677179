"""Draining a node before it goes away: its pods evicted (PodDisruptionBudgets respected),
DaemonSets' pods left, emptyDir data given up, as kubectl drain does it for Kubespray and k0sctl.
A drain that cannot finish within DRAIN_TIMEOUT fails, and the node is left cordoned."""

import shlex

from operations.kubectl import KUBECTL

DRAIN_TIMEOUT = "360s"


def drain_command(node_name):
    """kubectl drain of `node_name`, from a control plane's admin.conf."""
    return (f"{KUBECTL} drain {shlex.quote(node_name)} --ignore-daemonsets --delete-emptydir-data --force "
            f"--timeout={DRAIN_TIMEOUT}")
