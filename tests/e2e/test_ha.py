"""The HA layout (lab/clusters/ha.yaml): 2 lb hosts with keepalived + haproxy holding the VIP,
3 control planes with external etcd over TLS, 2 workers reaching the API through their localhost
proxy. Deployed once by deploy.py on fresh machines, checked, then made to lose machines, then
etcd is lost and restored from a snapshot."""

import json
import time
from collections import Counter

import pytest

from e2e_backup import BackupAndRestore
from e2e_checks import ClusterChecks, VipHolderLoss
from support import wait_until

pytestmark = pytest.mark.e2e
CLUSTER_FILE = "ha.yaml"


class TestHighlyAvailableCluster(ClusterChecks):
    pass


def busiest_apiserver(cluster, worker):
    """The control plane most of the worker's proxy connections go to right now."""
    addresses = {cluster.lab.host(h).address: h for h in cluster.hosts_with_role("control_plane")}
    out = cluster.lab.sudo(worker, "ss -Htn state established '( dport = :6443 )'").stdout
    peers = Counter(line.split()[-1].rpartition(":")[0] for line in out.splitlines() if line.strip())
    return addresses[max((a for a in peers if a in addresses), key=peers.__getitem__)]


def lease_renewed(cluster, node):
    return json.loads(cluster.kubectl(f"-n kube-node-lease get lease {node} -o json").stdout)["spec"]["renewTime"]


def proxy_pid(cluster, worker):
    return cluster.lab.ssh(worker, "systemctl show -p MainPID --value kubeha-api-proxy").stdout.strip()


class TestLosingTheVipHolder(VipHolderLoss):
    OUTAGE_LIMIT = 10  # keepalived: the BACKUP takes over after three missed adverts


class TestLosingMachines:
    def test_workers_stay_ready_through_their_localhost_proxy_while_an_apiserver_is_down(self, cluster):
        workers = cluster.hosts_with_role("worker")
        target = busiest_apiserver(cluster, workers[0])
        before = {w: lease_renewed(cluster, w) for w in workers}
        with cluster.apiserver_stopped(target):
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                for worker in workers:
                    assert cluster.curl(worker, "https://127.0.0.1:6443/healthz", timeout=5) == "ok", \
                        f"{worker}'s proxy did not reach an apiserver while {target}'s was down"
                time.sleep(3)
            assert cluster.all_ready(workers), cluster.node_readiness()
            after = {w: lease_renewed(cluster, w) for w in workers}
            assert all(after[w] != before[w] for w in workers), "the workers' kubelets stopped renewing"

    def test_the_cluster_serves_without_the_first_control_plane_and_a_deploy_still_succeeds(self, cluster):
        first = cluster.first_control_plane
        cluster.stop(first)
        try:
            assert wait_until(cluster.api_answers_through_vip, 30)
            cluster.local_kubectl(["create", "configmap", "e2e-without-first", "--from-literal=a=b"])
            assert cluster.kubectl("get configmap e2e-without-first -o name").stdout.strip()
            cluster.timed(f"deploy with {first} stopped", lambda: cluster.deploy(down=[first]))
        finally:
            cluster.start(first)
            cluster.local_kubectl(["delete", "configmap", "e2e-without-first"], check=False)
        assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), cluster.node_readiness()

    def test_a_control_plane_back_after_it_was_down_rejoins_and_the_proxies_follow(self, cluster):
        planes = cluster.hosts_with_role("control_plane")
        workers = cluster.hosts_with_role("worker")
        third = planes[2]
        pids = {w: proxy_pid(cluster, w) for w in workers}
        # the machine was lost: taken out of the cluster, and it comes back wiped of Kubernetes
        cluster.stop(third)
        cluster.kubectl(f"delete node {third}")
        cluster.start(third)
        cluster.lab.sudo(third, "kubeadm reset -f >/dev/null 2>&1")
        assert not cluster.apiserver_answers(third)
        cluster.timed(f"deploy adding {third} back", cluster.deploy)
        assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), cluster.node_readiness()
        # the proxies find the returned apiserver by themselves: with the other two down, the
        # workers still reach the API, and no proxy was restarted
        with cluster.apiserver_stopped(planes[0]), cluster.apiserver_stopped(planes[1]):
            for worker in workers:
                assert wait_until(lambda: cluster.curl(worker, "https://127.0.0.1:6443/healthz", timeout=5) == "ok",
                                  30), f"{worker}'s proxy does not reach {third}"
        assert {w: proxy_pid(cluster, w) for w in workers} == pids


class TestBackupAndRestore(BackupAndRestore):
    """Last: the drills lose etcd for real (two members' data, then all three) and restore it."""
