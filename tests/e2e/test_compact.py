"""The compact layout (lab/clusters/compact.yaml, topology A of the users' guide): k1-k3 control
planes with stacked etcd that also run workloads, k4 a worker, kube-vip holding the VIP on the
control planes. Deployed once by deploy.py on fresh machines, checked, then the VIP holder is
shut down as the guide's HA test does, then etcd is lost and restored from a snapshot."""

import pytest

from e2e_backup import BackupAndRestore
from e2e_checks import ClusterChecks, VipHolderLoss

pytestmark = pytest.mark.e2e
CLUSTER_FILE = "compact.yaml"


class TestCompactCluster(ClusterChecks):
    pass


class TestLosingTheVipHolder(VipHolderLoss):
    OUTAGE_LIMIT = 30  # kube-vip's leader election: a new leader takes the lease


class TestBackupAndRestore(BackupAndRestore):
    """Last: the drills lose etcd for real (two members' data, then all three) and restore it."""
