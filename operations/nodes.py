"""Node taints and labels, kept as the cluster file says, from the anchor control plane."""

import shlex

from pyinfra import host
from pyinfra.api import operation

from cluster import paths
from cluster.context import anchor_control_plane
from facts.kubernetes import ClusterNodes
from operations.kubectl import KUBECTL

CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"


@operation()
def taints_and_labels(schedulable, control_planes, labels):
    """Remove (or put back) the control-plane taint, and set each node's labels.

    + schedulable: control planes run workloads
    + control_planes: names of the control-plane nodes
    + labels: {node name: {key: value}}
    Before the cluster answers (a fresh cluster in a dry run), kubeadm's own taint setting
    is assumed, and every wanted label is reported.
    """
    if host != anchor_control_plane():
        host.noop("nodes are labelled from the anchor control plane")
        return
    nodes = host.get_fact(ClusterNodes, kubeconfig=paths.ADMIN_CONF)
    for name, wanted in labels.items():
        current = (nodes or {}).get(name, {}).get("labels", {})
        missing = {k: v for k, v in wanted.items() if current.get(k) != v}
        if missing and (nodes is None or name in nodes):
            pairs = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(missing.items()))
            yield f"{KUBECTL} label node {shlex.quote(name)} --overwrite {pairs}"
    for name in control_planes:
        if name not in (nodes or {}):
            continue
        tainted = any(t["key"] == CONTROL_PLANE_TAINT for t in nodes[name]["taints"])
        if schedulable and tainted:
            yield f"{KUBECTL} taint node {shlex.quote(name)} {CONTROL_PLANE_TAINT}:NoSchedule-"
        elif not schedulable and not tainted:
            yield f"{KUBECTL} taint node {shlex.quote(name)} {CONTROL_PLANE_TAINT}:NoSchedule"
