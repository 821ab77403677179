"""The compact layout (lab/clusters/compact.yaml, topology A of the users' guide): k1-k3 control
planes with stacked etcd that also run workloads, k4 a worker, kube-vip holding the VIP on the
control planes. Deployed once by deploy.py on fresh machines, checked, then the VIP holder is
shut down as the guide's HA test does."""

import pytest

from e2e_checks import ClusterChecks
from e2e_cluster import wait_until

pytestmark = pytest.mark.e2e
CLUSTER_FILE = "compact.yaml"


class TestCompactCluster(ClusterChecks):
    pass


class TestLosingMachines:
    def test_the_api_answers_through_the_vip_within_seconds_when_its_holder_stops(self, cluster):
        holder, stop_took, answered_after = cluster.stop_vip_holder()
        try:
            print(f"\nkube-vip failover: {holder} stopped in {stop_took:.1f} s; the API answered through the "
                  f"VIP {answered_after:.1f} s after the stop began")
            cluster.times["VIP failover (API answers again)"] = answered_after
            assert answered_after < stop_took + 60
            others = [n for n in cluster.nodes if n != holder]
            assert wait_until(lambda: cluster.all_ready(others) and cluster.vip_holders(), 60)
            # kubectl from the gateway keeps working, with the user's own rights
            assert cluster.local_kubectl(["get", "pods", "-n", "kube-system", "-o", "name"]).stdout.split()
        finally:
            cluster.start(holder)
        assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), cluster.node_readiness()
