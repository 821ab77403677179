"""The compact layout (lab/clusters/compact.yaml, topology A of the users' guide): k1-k3 control
planes with stacked etcd that also run workloads, k4 a worker, kube-vip holding the VIP on the
control planes. Deployed once by deploy.py on fresh machines, checked, then the VIP holder is
shut down as the guide's HA test does, then etcd is lost and restored from a snapshot; then the
rest of its life, chained: the worker is removed, every certificate renewed, the cluster reset
and deployed again on the same machines, where the usual checks pass once more (tests in the
order they are written)."""

import datetime

import pytest

from cluster.certificates import KUBELET_CLIENT, parse_time
from e2e_backup import BackupAndRestore, data_dir
from e2e_checks import ClusterChecks, VipHolderLoss, etcd_endpoint_health, planned_on
from e2e_lifecycle import certificate_expiry, changed_copy, entry_of, leftovers, moved_aside
from lab.testing import LabHandle
from support import run_pyinfra, wait_until

pytestmark = pytest.mark.e2e
CLUSTER_FILE = "compact.yaml"
PLANES = ["k1", "k2", "k3"]
# a lifetime short enough to tell the renewed certificates at a glance, and a window wider than
# what a fresh cluster's certificates have left: the run renews every one of them; the window of
# the run after is narrower than the new lifetime, so it renews nothing
SHORT_LIFETIME = {"renew_before": 400, "validity_hours": 48}
AFTER_RENEWAL = {"renew_before": 1, "validity_hours": 48}


class TestCompactCluster(ClusterChecks):
    pass


class TestLosingTheVipHolder(VipHolderLoss):
    OUTAGE_LIMIT = 30  # kube-vip's leader election: a new leader takes the lease


class TestBackupAndRestore(BackupAndRestore):
    """Then the drills lose etcd for real (two members' data, then all three) and restore it; the
    rest of the cluster's life below goes on with the restored cluster."""

    MORE = {"test_a_restore_after_losing_two_of_three_members"}  # CI runs it on the HA layout


def renewable(expiry):
    """The certificates kubeha renews: not the CAs, not the kubelet's (it rotates its own)."""
    return {path: when for path, when in expiry.items() if not path.endswith("ca.crt") and path != KUBELET_CLIENT}


class TestTheRestOfItsLife:
    def test_the_worker_is_removed_while_the_api_answers_through_the_vip(self, cluster, tmp_path):
        without_k4 = changed_copy(cluster.lab.cluster_file, tmp_path, "compact-without-k4",
                                  remove=[entry_of(cluster.lab, "k4")])
        with cluster.probed_through_vip() as probe:
            cluster.timed("remove a worker", lambda: cluster.deploy(cluster_file=without_k4))
        print(f"\n{cluster.name}: removing k4: {probe.failures} of {len(probe.probes)} probes through the VIP failed")
        assert probe.failures == 0, f"the API did not answer through the VIP for {probe.outage_seconds:.1f} s"
        cluster.removed.add("k4")
        assert set(cluster.node_readiness()) == set(PLANES)
        assert wait_until(lambda: cluster.all_ready(PLANES), 60), cluster.node_readiness()
        assert leftovers(cluster.lab, "k4") == [], "k4 was not reset"
        assert moved_aside(cluster.lab, "k4") == ["/var/lib/kubelet"]
        cluster.lab.ssh("k4", "true")  # its SSH was never cut

    @pytest.mark.e2e_more  # about 5 min: each control plane's static pods restart in turn
    def test_every_certificate_is_renewed_and_the_next_run_renews_nothing(self, cluster, tmp_path):
        remove = [entry_of(cluster.lab, "k4")]
        renewing = changed_copy(cluster.lab.cluster_file, tmp_path, "compact-renew", remove=remove,
                                certificates=SHORT_LIFETIME)
        renewed = changed_copy(cluster.lab.cluster_file, tmp_path, "compact-renewed", remove=remove,
                               certificates=AFTER_RENEWAL)
        lab = LabHandle(renewing)
        before = {plane: renewable(certificate_expiry(lab, plane)) for plane in PLANES}
        assert all(before.values())
        plan = cluster.deploy(dry=True, cluster_file=renewing)
        renewals = ["Renew kubeadm's certificates when due and restart what reads them, one control plane at a time",
                    "Make the kubectl user's certificate and kubeconfig, again when due"]
        if cluster.definition.etcd.topology == "external":  # stacked etcd's are kubeadm's, renewed with its own
            renewals.append("etcd: restart a changed member, keeping the quorum")
        for operation in renewals:
            assert planned_on(plan, operation) == set(PLANES), operation
        cluster.timed("renew every certificate", lambda: cluster.deploy(cluster_file=renewing))
        limit = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=48, minutes=10)
        for plane in PLANES:
            after = renewable(certificate_expiry(lab, plane))
            assert set(after) == set(before[plane]), plane
            for path, when in after.items():
                assert when != before[plane][path] and parse_time(when) < limit, (plane, path, before[plane][path], when)
        assert wait_until(lambda: cluster.all_ready(PLANES), 120, interval=5), cluster.node_readiness()
        assert all(entry["health"] for entry in etcd_endpoint_health(cluster))
        user = cluster.definition.kubectl_user.name
        assert user in cluster.kubectl("auth whoami", user=user).stdout
        assert user in cluster.local_kubectl(["auth", "whoami"]).stdout, "the local copy follows the new certificate"
        assert cluster.timed("no-op re-run after the renewal", lambda: cluster.deploy(cluster_file=renewed)) == {}

    def test_the_cluster_is_reset_and_deployed_again_on_the_same_machines(self, cluster, monkeypatch):
        machines = PLANES + ["k4"]
        monkeypatch.setenv("KUBEHA_RESET_CONFIRM", cluster.name)
        plan, _ = run_pyinfra("reset.py", cluster.lab.cluster_file, cluster.state_dir, dry=True)
        assert planned_on(plan, "Reset: kubeadm reset") == set(PLANES), "k4 is reset already"
        cluster.timed("reset the cluster", lambda: run_pyinfra("reset.py", cluster.lab.cluster_file,
                                                               cluster.state_dir))
        for machine in machines:
            assert leftovers(cluster.lab, machine) == [], machine
            cluster.lab.ssh(machine, "true")
        for plane in PLANES:
            assert {data_dir(cluster), "/var/lib/kubelet"} <= set(moved_aside(cluster.lab, plane)), plane
        assert (cluster.state_dir / cluster.name / "pki" / "ca.crt").is_file(), "the local state is kept"
        # the same machines, the same local state: a new cluster, checked below as the first one was
        cluster.removed.discard("k4")
        cluster.plan = cluster.timed("--dry after the reset", lambda: cluster.deploy(dry=True))
        cluster.changes = cluster.timed("deploy after the reset", cluster.deploy)


class TestCompactClusterAfterTheReset(ClusterChecks):
    """The usual checks, on the cluster deployed again after the reset."""
