"""The whole deploy planned against fake hosts (pyinfra's @fake connector): stage order, the
cluster actions named per host, and no init or join on a cluster that already runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import CLUSTER_FILES, local_copy

PROJECT = Path(__file__).resolve().parents[2]
KUBE_STATE_COMMAND = "for f in /etc/kubernetes/kubelet.conf"
CONTROL_PLANE_FILES = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
                       "/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kubelet/config.yaml"]
WORKER_FILES = ["/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/config.yaml"]


def plan(cluster_file, tmp_path, responses=None, deploy="deploy.py"):
    """pyinfra --dry --json of `deploy`: [(operation name, [nodes with a change])] in order."""
    env = {**os.environ, "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(tmp_path / "state"),
           "PYINFRA_FAKE_DELAY": "0"}
    if responses is not None:
        state = tmp_path / "fake-state.json"
        state.write_text(json.dumps(responses))
        env["KUBEHA_FAKE_STATE"] = str(state)
    result = subprocess.run(
        [sys.executable, "-m", "pyinfra", "tests/plan/fake_inventory.py", deploy, "--dry", "--json"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ops = json.loads(result.stdout)["plan"]
    return [(op["name"], sorted(h.removeprefix("@fake/") for h in op["hosts_with_change"])) for op in ops]


def first(ops, words):
    """Index of the first operation that changes something and whose name has `words`."""
    return next(i for i, (name, hosts) in enumerate(ops) if hosts and words.lower() in name.lower())


def hosts_of(ops, words):
    return sorted({h for name, hosts in ops if words.lower() in name.lower() for h in hosts})


@pytest.fixture(scope="module")
def fresh_ha(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fresh")
    return plan(local_copy(CLUSTER_FILES["lab-ha"], directory), directory)


def test_stages_come_in_order(fresh_ha):
    steps = ["hostname", "haproxy", "etcd", "kubeadm init", "join as a control plane",
             "join as a worker", "Install Calico", "kubectl user's group"]
    positions = [first(fresh_ha, words) for words in steps]
    assert positions == sorted(positions), dict(zip(steps, positions))


def test_cluster_actions_are_named_with_their_hosts(fresh_ha):
    assert hosts_of(fresh_ha, "kubeadm init") == ["cp1"]
    assert hosts_of(fresh_ha, "join as a control plane") == ["cp2", "cp3"]
    assert hosts_of(fresh_ha, "join as a worker") == ["w1", "w2"]
    assert hosts_of(fresh_ha, "Install Calico") == ["cp1"]


def test_control_planes_join_one_at_a_time():
    source = (PROJECT / "tasks" / "control_plane.py").read_text()
    join_call = source[source.index("kubeadm_ops.join("):]
    assert "_serial=True" in join_call[:join_call.index(")")]


def test_a_running_cluster_plans_no_init_and_no_join(tmp_path):
    cluster = local_copy(CLUSTER_FILES["lab-ha"], tmp_path)
    responses = {name: {KUBE_STATE_COMMAND: CONTROL_PLANE_FILES} for name in ("cp1", "cp2", "cp3")}
    responses.update({name: {KUBE_STATE_COMMAND: WORKER_FILES} for name in ("w1", "w2")})
    ops = plan(cluster, tmp_path, responses)
    assert hosts_of(ops, "kubeadm init") == []
    assert hosts_of(ops, "kubeadm join") == []


def test_a_new_control_plane_joins_a_running_cluster(tmp_path):
    """cp1 is gone and rebuilt: it must join the cluster cp2 and cp3 run, never init a new one."""
    cluster = local_copy(CLUSTER_FILES["lab-ha"], tmp_path)
    responses = {name: {KUBE_STATE_COMMAND: CONTROL_PLANE_FILES} for name in ("cp2", "cp3")}
    ops = plan(cluster, tmp_path, responses, deploy="tasks/control_plane.py")
    assert hosts_of(ops, "kubeadm init") == []
    assert hosts_of(ops, "join as a control plane") == ["cp1"]


def test_compact_topology_plans_kube_vip_before_init(tmp_path):
    ops = plan(local_copy(CLUSTER_FILES["lab-compact"], tmp_path), tmp_path)
    assert first(ops, "kube-vip") < first(ops, "kubeadm init")
    assert hosts_of(ops, "kubeadm init") == ["k1"]
    assert hosts_of(ops, "join as a control plane") == ["k2", "k3"]
    assert hosts_of(ops, "join as a worker") == ["k4"]


def test_every_stage_starts_on_every_host():
    """pyinfra orders operations per host only; the stage barrier orders stages across hosts."""
    for task in sorted((PROJECT / "tasks").glob("*.py")):
        assert "\nstage.begin(" in task.read_text(), f"{task.name} does not begin with stage.begin()"
