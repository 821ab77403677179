"""Finishing: control planes schedulable or not as kubernetes.control_planes_schedulable says
(also for nodes that joined before it changed), and every node's labels.

Runs on the anchor control plane. Alone: `pyinfra inventory.py tasks/finish.py`.
"""

from cluster.context import cluster, has_role
from operations.nodes import taints_and_labels
from operations import stage

stage.begin(name="Stage: Finish", title="Finish")

if has_role("control_plane"):
    labels = {
        node.name: {**cluster().kubernetes.node_labels, **node.labels}
        for node in cluster().hosts
        if "control_plane" in node.roles or "worker" in node.roles
    }
    taints_and_labels(
        name="Set control-plane taints and node labels",
        schedulable=cluster().kubernetes.control_planes_schedulable,
        control_planes=[node.name for node in cluster().control_planes],
        labels={name: wanted for name, wanted in labels.items() if wanted},
    )
