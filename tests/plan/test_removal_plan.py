"""Removing nodes, planned and run by pyinfra against the @fake connector (tests/plan/fake_inventory.py):
the lab's HA cluster as it runs, described by canned fact outputs, with one more line in its
cluster file: a worker removed, the first control plane removed (its replacement joining in the
same run), a dead control plane removed, and a typo. Plans come from `--dry --json`, the commands
of a run from `-y -vv` (the fake hosts only record them). No host is ever contacted."""

import json
import re

import pytest
import yaml

from support import CLUSTER_FILES, fake_pyinfra, local_copy

CONTROL_PLANE_FILES = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
                       "/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kubelet/config.yaml"]
ADDRESSES = {"cp1": "10.123.0.21", "cp2": "10.123.0.22", "cp3": "10.123.0.23", "w1": "10.123.0.31",
             "w2": "10.123.0.32"}
MEMBERS = ("cp1", "cp2", "cp3")
REPLACEMENT = {"name": "cp4", "address": "10.123.0.24", "roles": ["control_plane", "etcd"]}


def nodes_json(names):
    items = [{"metadata": {"name": n, "labels": {"node-role.kubernetes.io/control-plane": ""} if n.startswith("cp")
                           else {}},
              "status": {"conditions": [{"type": "Ready", "status": "True"}],
                         "addresses": [{"type": "InternalIP", "address": ADDRESSES[n]}]}} for n in names]
    return json.dumps({"items": items})


def member_id(name):
    return 0xa0 + MEMBERS.index(name)


def members_json(names):
    members = [{"ID": member_id(n), "name": n, "peerURLs": [f"https://{ADDRESSES[n]}:2380"],
                "clientURLs": [f"https://{ADDRESSES[n]}:2379"]} for n in names]
    return json.dumps({"header": {"cluster_id": 1}, "members": members})


def health(healthy):
    results = [{"endpoint": f"https://{ADDRESSES[n]}:2379", "health": n in healthy} for n in MEMBERS]
    listed = ",".join(f"https://{ADDRESSES[n]}:2379" for n in MEMBERS)
    return [f"#kubeha:endpoints {listed}", "#kubeha:health", json.dumps(results)]


def stored_config(members):
    return yaml.safe_dump({"kind": "ClusterConfiguration", "certificateValidityPeriod": "8760h0m0s",
                           "etcd": {"external": {"endpoints": [f"https://{ADDRESSES[n]}:2379" for n in members]}}
                           }).splitlines()


def footprint(name):
    """What a deployed node holds, as KubehaFootprint's command prints it."""
    return ["#kubeha:paths", "/var/lib/kubelet", "/usr/local/bin/kubeadm", "/etc/kubernetes", "/etc/kubeha",
            *(["/var/lib/kubeha-etcd", "/etc/etcd"] if name.startswith("cp") else []),
            "#kubeha:units", "kubelet LoadState=loaded ActiveState=active UnitFileState=enabled",
            "containerd LoadState=loaded ActiveState=active UnitFileState=enabled",
            *(["etcd LoadState=loaded ActiveState=active UnitFileState=enabled"] if name.startswith("cp") else []),
            "#kubeha:marked", "#kubeha:mounts", "#kubeha:chains", "iptables-nft nat KUBE-SERVICES KUBE-SVC-X",
            "#kubeha:nft", "inet kubeha", "#kubeha:ipsets", "#kubeha:links", "vxlan.calico", "#kubeha:tunl0",
            "#kubeha:routes", "#kubeha:pods", "4", "#kubeha:hosts_block", "yes"]


def running_ha(healthy=MEMBERS):
    """Canned facts of the lab's HA cluster, converged: every control plane joined and an etcd
    member, the API and etcd answering from every member."""
    control_plane = {
        "for f in /etc/kubernetes/kubelet.conf": CONTROL_PLANE_FILES,
        "get --raw=/api/v1/nodes": nodes_json(ADDRESSES),
        "member list -w json": members_json(MEMBERS),
        "endpoint health -w json": health(healthy),
        "get configmap kubeadm-config": stored_config(MEMBERS),
        "--etcd-servers=[^": "--etcd-servers=" + ",".join(f"https://{ADDRESSES[n]}:2379" for n in MEMBERS),
        "type=bootstrap.kubernetes.io/token": "#kubeha:now 2026-11-23T12:00:00Z",  # no token left
    }
    responses = {name: {**control_plane, "uname -n": name} for name in MEMBERS}
    for name in ("w1", "w2"):
        responses[name] = {"uname -n": name}
    for name in ADDRESSES:
        responses[name]["echo '#kubeha:paths'"] = footprint(name)
    return responses


def cluster_file(workdir, label, remove, add=(), gone=None):
    """The lab's HA cluster file with `remove:` entries; the hosts `gone` (default: those the
    entries name) leave `hosts`, and `add` join it."""
    data = yaml.safe_load(local_copy(CLUSTER_FILES["lab-ha"], workdir).read_text())
    gone = set(gone or [entry["name"] for entry in remove])
    data["hosts"] = [h for h in data["hosts"] if h["name"] not in gone] + list(add)
    data["remove"] = list(remove)
    data["name"] = "lab-ha"
    path = workdir / f"{label}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(workdir, path, responses, deploys, execute=False):
    """The plan [(operation, [nodes changed])] of the stages, or with `execute` the run:
    ({node: [commands, in order]}, output). A failed planning returns (None, output)."""
    result = fake_pyinfra(path, workdir / "state", " ".join(deploys), responses, execute=execute, check=False)
    if execute:
        return result.commands, result.output
    return (result.plan if result.returncode == 0 else None), result.output


def changed(plan, *words):
    return {name: hosts for name, hosts in plan if hosts and any(w.lower() in name.lower() for w in words)}


def hosts_of(plan, words):
    return sorted({h for name, hosts in plan if words.lower() in name.lower() for h in hosts})


def commands_like(commands, node, pattern):
    return [c for c in commands.get(node, []) if re.search(pattern, c)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("removal")


REMOVAL = ("tasks/remove_nodes.py",)


def test_a_worker_is_drained_reset_and_deleted(workdir):
    path = cluster_file(workdir, "without-w2", [{"name": "w2", "address": "10.123.0.32"}])
    plan, output = run(workdir, path, running_ha(), REMOVAL)
    assert plan is not None, output
    assert hosts_of(plan, "Drain the nodes being removed") == ["cp1"]
    assert hosts_of(plan, "Delete the nodes removed") == ["cp1"]
    assert hosts_of(plan, "Remove their etcd members") == [], "a worker is no etcd member"
    assert {name for name, hosts in plan if hosts == ["w2"]} == {
        "Reset: stop the kubelet and the workloads", "Reset: stop the control plane's pods, unmount the kubelet's volumes",
        "Reset: move the kubelet's and etcd's data aside",
        "Reset: kubeadm reset", "Reset: stop and disable kubeha's services",
        "Reset: remove kube-proxy's, Calico's and kubeha's network state", "Reset: remove the files kubeha wrote"}
    assert all(hosts in ([], ["cp1"], ["w2"]) for _, hosts in plan), plan
    assert "--> Removing w2 (10.123.0.32: node)" in output
    for deletion in ("reset: kubeadm reset (its etcd phase skipped)", "reset: remove /etc/kubeha",
                     "reset: iptables-nft nat: the rules of KUBE-SERVICES KUBE-SVC-X",
                     "reset: nftables table inet kubeha", "reset: interface vxlan.calico"):
        assert f"[@fake/w2]  {deletion}" in output, f"--dry lists {deletion}"

    commands, output = run(workdir, path, running_ha(), REMOVAL, execute=True)
    (drain,) = commands_like(commands, "cp1", r" drain ")
    assert drain.startswith("kubectl --kubeconfig /etc/kubernetes/admin.conf drain w2 --ignore-daemonsets")
    assert commands_like(commands, "cp1", r"delete node") == ["kubectl --kubeconfig /etc/kubernetes/admin.conf "
                                                              "delete node w2"]
    on_w2 = commands["w2"]
    order = [next(i for i, c in enumerate(on_w2) if re.search(p, c))
             for p in (r"^systemctl stop kubelet", r"crictl stop", r"crictl rmp --all", r"mv /var/lib/kubelet ",
                       r"kubeadm reset -f",
                       r"disable --now containerd", r"iptables-nft-restore --noflush", r"rm -rf /etc/kubeha")]
    assert order == sorted(order), on_w2
    assert not [c for c in on_w2 if re.search(r"iptables(-nft|-legacy)? -F|flush ruleset|rm -rf /var/lib/kubelet ", c)]


def test_the_first_control_plane_goes_while_its_replacement_joins_and_nothing_is_initialised(workdir):
    path = cluster_file(workdir, "without-cp1", [{"name": "cp1", "address": "10.123.0.21"}], add=[REPLACEMENT])
    stages = ("tasks/loadbalancer.py", "tasks/control_plane.py", "tasks/remove_nodes.py")
    plan, output = run(workdir, path, running_ha(), stages)
    assert plan is not None, output
    assert hosts_of(plan, "kubeadm init") == [], "cp2 is the first control plane now, and it runs already"
    assert hosts_of(plan, "join as a control plane") == ["cp4"]
    assert hosts_of(plan, "Keep the cluster's stored kubeadm configuration") == ["cp2"]
    assert hosts_of(plan, "Point each apiserver at the etcd members") == ["cp2", "cp3"]
    assert hosts_of(plan, "Drain the nodes being removed") == ["cp2"]
    assert hosts_of(plan, "Remove their etcd members") == ["cp2"]
    assert hosts_of(plan, "Reset: kubeadm reset") == ["cp1"]
    assert hosts_of(plan, "Delete the nodes removed") == ["cp2"]
    assert "--> Removing cp1 (10.123.0.21: control plane and etcd member a0)" in output
    # haproxy leaves cp1 out (the file no longer lists it) before cp1 is touched
    assert hosts_of(plan, "Write haproxy's configuration") == ["lb1", "lb2"]
    names = [name for name, _ in plan]
    assert names.index("Write haproxy's configuration") < names.index("Drain the nodes being removed")
    assert names.index("Point each apiserver at the etcd members of the file, one at a time") < \
        names.index("Remove their etcd members, keeping the quorum") < names.index("Reset: kubeadm reset")

    commands, output = run(workdir, path, running_ha(), stages, execute=True)
    (remove,) = commands_like(commands, "cp2", r"member remove")
    assert "member remove a0" in remove and "https://10.123.0.21:2379" not in remove.split("member remove")[0], \
        "the member is removed through the others"
    (rewrite,) = commands_like(commands, "cp2", r"--etcd-servers=https")[:1]
    assert "--etcd-servers=https://10.123.0.22:2379,https://10.123.0.23:2379,https://10.123.0.24:2379#" in rewrite
    assert commands_like(commands, "cp2", r"^kubeadm init phase upload-config kubeadm --config "
                                          r"/etc/kubeha/kubeadm-cluster.yaml$")
    assert not commands_like(commands, "cp1", r"member remove"), "kubeadm reset's etcd phase is skipped"


def test_a_dead_control_plane_is_taken_out_and_its_cleanup_skipped(workdir):
    path = cluster_file(workdir, "without-cp3", [{"name": "cp3", "address": "10.123.0.23"}], add=[REPLACEMENT])
    responses = {**running_ha(healthy=("cp1", "cp2")), "down": ["cp3"]}
    plan, output = run(workdir, path, responses, REMOVAL)
    assert plan is not None, output
    assert hosts_of(plan, "Drain the nodes being removed") == [], "a dead node is not drained"
    assert "cp3 cannot be reached: not drained, its pods go with its node" in output
    assert "cp3 cannot be reached: it is taken out of the cluster, its machine is not cleaned (skipped)" in output
    assert hosts_of(plan, "Remove their etcd members") == ["cp1"]
    assert hosts_of(plan, "Delete the nodes removed") == ["cp1"]
    assert not [name for name, hosts in plan if name.startswith("Reset:") and hosts], "no machine is reset"

    commands, _ = run(workdir, path, responses, REMOVAL, execute=True)
    (remove,) = commands_like(commands, "cp1", r"member remove")
    assert "member remove a2" in remove
    assert commands_like(commands, "cp1", r"delete node cp3$")


@pytest.mark.parametrize("typo, message", [
    ({"name": "w2", "address": "10.123.0.33"}, "no node w2 with address 10.123.0.33: node w2 has address 10.123.0.32"),
    # w2 left hosts, but the entry names another node
    ({"name": "w3", "address": "10.123.0.32"}, "no node w3 with address 10.123.0.32: 10.123.0.32 is node w2"),
])
def test_a_typo_refuses_the_run_before_anything_changes(workdir, typo, message):
    path = cluster_file(workdir, f"typo-{typo['name']}", [typo], gone=["w2"])
    plan, output = run(workdir, path, running_ha(), REMOVAL)
    assert plan is None, "the run must stop while it is planned"
    assert "the removal is refused, nothing was changed" in output and message in output, output[-3000:]


def test_a_refused_removal_runs_no_stage_at_all(workdir):
    path = cluster_file(workdir, "typo-run", [{"name": "w2", "address": "10.123.0.33"}])
    commands, output = run(workdir, path, running_ha(), ("tasks/prep.py", "tasks/remove_nodes.py"), execute=True)
    assert "the removal is refused, nothing was changed" in output
    assert "--> Beginning operation run" not in output, "prep, planned before, must not run either"


def test_no_member_answering_refuses_the_removal(workdir):
    path = cluster_file(workdir, "no-quorum", [{"name": "w2", "address": "10.123.0.32"}])
    responses = running_ha()
    for name in MEMBERS:
        responses[name]["member list -w json"] = "#kubeha:unreachable"
    plan, output = run(workdir, path, responses, REMOVAL)
    assert plan is None and "no etcd member answers with a quorum" in output, output[-3000:]


STACKED = {"k1": "172.16.2.111", "k2": "172.16.2.112", "k3": "172.16.2.113", "k4": "172.16.2.114"}


def test_a_stacked_control_plane_hands_the_vip_over_and_leaves_etcd_through_the_anchors_pod(workdir):
    """Topology A: stacked etcd and kube-vip. k1 goes (its replacement k5 joins in the same run)."""
    data = yaml.safe_load(local_copy(CLUSTER_FILES["topology-a"], workdir).read_text())
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "k1"] + [
        {"name": "k5", "address": "172.16.2.115", "roles": ["control_plane", "etcd"]}]
    data["remove"] = [{"name": "k1", "address": STACKED["k1"]}]
    path = workdir / "topology-a-without-k1.yaml"
    path.write_text(yaml.safe_dump(data))
    items = [{"metadata": {"name": n, "labels": {"node-role.kubernetes.io/control-plane": ""} if n != "k4" else {}},
              "status": {"conditions": [{"type": "Ready", "status": "True"}],
                         "addresses": [{"type": "InternalIP", "address": a}]}} for n, a in STACKED.items()]
    members = [{"ID": 0xb0 + i, "name": n, "peerURLs": [f"https://{STACKED[n]}:2380"],
                "clientURLs": [f"https://{STACKED[n]}:2379"]} for i, n in enumerate(("k1", "k2", "k3"))]
    health = [{"endpoint": f"https://{STACKED[n]}:2379", "health": True} for n in ("k1", "k2", "k3")]
    control_plane = {"for f in /etc/kubernetes/kubelet.conf": CONTROL_PLANE_FILES,
                     "get --raw=/api/v1/nodes": json.dumps({"items": items}),
                     "member list -w json": ["#kubeha:members", json.dumps({"members": members}), "#kubeha:health",
                                             json.dumps(health)]}
    responses = {name: {**control_plane, "uname -n": name} for name in ("k1", "k2", "k3")}
    responses["k1"]["%N' /etc/kubernetes/manifests/kube-vip.yaml "] = (
        "user=root group=root mode=-rw------- atime=1 mtime=1 ctime=1 size=1 '/etc/kubernetes/manifests/kube-vip.yaml'")
    responses["k1"]["echo '#kubeha:paths'"] = footprint("cp1")
    plan, output = run(workdir, path, responses, REMOVAL)
    assert plan is not None, output
    assert hosts_of(plan, "Hand the API's VIP over") == ["k1"]
    assert hosts_of(plan, "Remove their etcd members") == ["k2"], "through the anchor's etcd pod"
    assert hosts_of(plan, "Reset: kubeadm reset") == ["k1"]
    commands, _ = run(workdir, path, responses, REMOVAL, execute=True)
    (remove,) = commands_like(commands, "k2", r"member remove")
    assert "exec etcd-k2 -- etcdctl --endpoints=https://127.0.0.1:2379" in remove and "member remove b0" in remove
    assert commands_like(commands, "k1", r"^rm -f /etc/kubernetes/manifests/kube-vip\.yaml$")
    names = [name for name, _ in plan]
    assert names.index("Hand the API's VIP over to another control plane") < \
        names.index("Remove their etcd members, keeping the quorum")
