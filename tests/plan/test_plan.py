"""The whole deploy planned against fake hosts (pyinfra's @fake connector): stage order, the
cluster actions named per host, and no init or join on a cluster that already runs."""

import re

import pytest

from support import CLUSTER_FILES, PROJECT, fake_pyinfra, local_copy

KUBE_STATE_COMMAND = "for f in /etc/kubernetes/kubelet.conf"
CONTROL_PLANE_FILES = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
                       "/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kubelet/config.yaml"]
WORKER_FILES = ["/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/config.yaml"]


def plan(cluster_name, directory, responses=None, tasks="deploy.py"):
    """[(operation, [nodes with a change])] of `tasks` planned on fake hosts, in order."""
    return fake_pyinfra(local_copy(CLUSTER_FILES[cluster_name], directory), directory / "state", tasks,
                        responses).plan


def first(ops, words):
    """Index of the first operation that changes something and whose name has `words`."""
    return next(i for i, (name, hosts) in enumerate(ops) if hosts and words.lower() in name.lower())


def hosts_of(ops, words):
    return sorted({h for name, hosts in ops if words.lower() in name.lower() for h in hosts})


@pytest.fixture(scope="module")
def fresh_ha_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fresh")
    return fake_pyinfra(local_copy(CLUSTER_FILES["lab-ha"], directory), directory / "state")


@pytest.fixture(scope="module")
def fresh_ha(fresh_ha_run):
    return fresh_ha_run.plan


def test_stages_come_in_order(fresh_ha):
    steps = ["hostname", "haproxy", "etcd", "kubeadm init", "join as a control plane",
             "join as a worker", "Install Calico", "kubectl user's group"]
    positions = [first(fresh_ha, words) for words in steps]
    assert positions == sorted(positions), dict(zip(steps, positions))


def test_every_stage_begins_with_its_barrier(fresh_ha_run):
    """pyinfra orders operations per host only; every stage's first operation is the barrier
    (operations/stage.py) that no host passes before every host has finished the stage before."""
    stages = re.findall(r'^local\.include\("(tasks/\w+\.py)"\)', (PROJECT / "deploy.py").read_text(), re.M)
    first = {}
    for file, name, _ in fresh_ha_run.planned:
        first.setdefault(file, name)
    assert list(first) == stages
    assert all(name.startswith("Stage: ") for name in first.values()), first


def test_control_planes_join_one_at_a_time(tmp_path):
    run = fake_pyinfra(local_copy(CLUSTER_FILES["lab-ha"], tmp_path), tmp_path / "state",
                       "tasks/control_plane.py", execute=True)
    assert "--> Starting serial operation: kubeadm join as a control plane, one at a time" in run.output
    assert run.ran("cp2", r"^kubeadm join ") and run.ran("cp3", r"^kubeadm join ") and not run.ran("cp1", r"^kubeadm join ")


def test_cluster_actions_are_named_with_their_hosts(fresh_ha):
    assert hosts_of(fresh_ha, "kubeadm init") == ["cp1"]
    assert hosts_of(fresh_ha, "join as a control plane") == ["cp2", "cp3"]
    assert hosts_of(fresh_ha, "join as a worker") == ["w1", "w2"]
    assert hosts_of(fresh_ha, "Install Calico") == ["cp1"]


def test_a_running_cluster_plans_no_init_and_no_join(tmp_path):
    responses = {name: {KUBE_STATE_COMMAND: CONTROL_PLANE_FILES} for name in ("cp1", "cp2", "cp3")}
    responses.update({name: {KUBE_STATE_COMMAND: WORKER_FILES} for name in ("w1", "w2")})
    ops = plan("lab-ha", tmp_path, responses)
    assert hosts_of(ops, "kubeadm init") == []
    assert hosts_of(ops, "kubeadm join") == []


def test_a_new_control_plane_joins_a_running_cluster(tmp_path):
    """cp1 is gone and rebuilt: it must join the cluster cp2 and cp3 run, never init a new one."""
    responses = {name: {KUBE_STATE_COMMAND: CONTROL_PLANE_FILES} for name in ("cp2", "cp3")}
    ops = plan("lab-ha", tmp_path, responses, tasks="tasks/control_plane.py")
    assert hosts_of(ops, "kubeadm init") == []
    assert hosts_of(ops, "join as a control plane") == ["cp1"]


def test_compact_topology_plans_kube_vip_before_init(tmp_path):
    ops = plan("lab-compact", tmp_path)
    assert first(ops, "kube-vip") < first(ops, "kubeadm init")
    assert hosts_of(ops, "kubeadm init") == ["k1"]
    assert hosts_of(ops, "join as a control plane") == ["k2", "k3"]
    assert hosts_of(ops, "join as a worker") == ["k4"]
