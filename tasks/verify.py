"""Verify: nodes Ready, external etcd healthy, the API answering on its endpoint; a summary
at the end, with the certificate each host sees expire first. Changes nothing; fails the run
when the cluster is not well.

Runs on the anchor control plane. Alone: `pyinfra inventory.py tasks/verify.py`.
"""

from cluster.certificates import held_by
from cluster.context import cluster, has_role
from operations.verify import cluster_health
from operations import stage

stage.begin(name="Stage: Verify", title="Verify")

if has_role("control_plane"):
    members = cluster().etcd_hosts if cluster().etcd.topology == "external" else []
    cluster_health(
        name="Check the cluster",
        expected_nodes=[n.name for n in cluster().hosts if {"control_plane", "worker"} & set(n.roles)],
        etcd_endpoints=[f"https://{m.address}:2379" for m in members],
        api_url=f"https://{cluster().api_address}:{cluster().api.port}",
        certificate_holders={n.name: held_by(cluster(), n) for n in cluster().hosts},
    )
