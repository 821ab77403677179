"""Verify: nodes Ready, etcd healthy, the API answering on its endpoint, and the cluster report at
the end (the VIP's holder, haproxy's apiservers, the nodes' versions, each etcd member, the
certificates that expire first, the kubectl command that reaches the cluster from here).
Changes nothing; fails the run when the cluster is not well.

Runs on the anchor control plane. Alone: `pyinfra inventory.py tasks/verify.py`.
"""

from cluster.context import cluster, has_role
from operations import stage
from operations.verify import cluster_health

stage.begin(name="Stage: Verify", title="Verify")

if has_role("control_plane"):
    cluster_health(name="Check the cluster", cluster=cluster())
