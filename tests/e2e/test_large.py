"""The large layout (lab/clusters/large.yaml): twelve machines, ten of them Kubernetes nodes,
five control planes (external etcd on three), two lb hosts. Deployed on fresh machines and
checked like the other layouts; then one more worker is added to the running lab and the
running cluster the way a user does it: one more host in the cluster file, `lab up`, deploy.py.

Too long for CI (marker `large`, not `e2e`): `make test-large`; the figures go to the README."""

import subprocess
import time

import pytest
import yaml

from e2e_checks import ClusterChecks
from lab import capacity
from lab.testing import LabHandle
from support import run_pyinfra, wait_until

pytestmark = pytest.mark.large
CLUSTER_FILE = "large.yaml"
ADDED = {"name": "w6", "address": "10.123.0.36", "roles": ["worker"]}


class TestLargeCluster(ClusterChecks):
    pass


def test_the_machine_holds_the_lab_within_its_raised_limits(cluster):
    raised = cluster.lab.status()["raised_sysctls"]
    for key, minimum in capacity.RAISED_SYSCTLS.items():
        assert int(capacity.read_sysctl(key)) >= minimum, (key, raised)
    in_use = subprocess.run("find /proc/[0-9]*/fd -lname 'anon_inode:inotify' 2>/dev/null | wc -l",
                            shell=True, capture_output=True, text=True).stdout.strip()
    print(f"\ninotify instances in use on the machine with {len(cluster.lab.hosts)} machines: {in_use}")


def test_a_worker_added_to_the_running_lab_and_cluster_joins(cluster, tmp_path):
    doc = yaml.safe_load(cluster.lab.cluster_file.read_text())
    doc["hosts"].append(ADDED)
    grown_file = tmp_path / "large-plus-one.yaml"
    grown_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    grown = LabHandle(grown_file)
    leaders = {h["name"]: h["leader"] for h in cluster.lab.status()["hosts"]}

    started = time.monotonic()
    grown.up()
    booted = time.monotonic()
    changes, _ = run_pyinfra("deploy.py", grown_file, cluster.state_dir)
    joined = time.monotonic()
    print(f"\nadding a worker: lab up {booted - started:.1f} s, deploy.py {joined - booted:.1f} s")
    assert {name for name, hosts in changes.items() if "w6" in hosts and name.endswith("kubeadm join as a worker")}
    assert {h["name"]: h["leader"] for h in grown.status()["hosts"] if h["name"] in leaders} == leaders
    assert wait_until(lambda: cluster.all_ready(cluster.nodes + ["w6"]), 300, interval=5), cluster.node_readiness()
    assert run_pyinfra("deploy.py", grown_file, cluster.state_dir)[0] == {}
