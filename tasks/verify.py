"""Verify: nodes Ready, external etcd healthy, the API answering on its endpoint; a summary
at the end. Changes nothing; fails the run when the cluster is not well.

Runs on the anchor control plane. Alone: `pyinfra inventory.py tasks/verify.py`.
"""

from cluster import paths
from cluster.context import cluster, has_role
from operations.verify import cluster_health
from operations import stage

stage.begin(name="Stage: Verify", title="Verify")

if has_role("control_plane"):
    members = cluster().etcd_hosts if cluster().etcd.topology == "external" else []
    cluster_health(
        name="Check the cluster",
        expected_nodes=[n.name for n in cluster().hosts if {"control_plane", "worker"} & set(n.roles)],
        etcd_endpoints=[f"https://{m.address}:{paths.ETCD_CLIENT_PORT}" for m in members],
        api_url=f"https://{cluster().api_address}:{cluster().api.port}",
    )
