"""The cluster report (cluster/report.py: summary) from tables of readings, for both etcd
topologies and for each way the API is held."""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cluster import etcd, report
from support import cluster_copy, shipped

V = {"kubeadm": "v1.35.8", "kubelet": "v1.35.8", "kubectl": "v1.35.8"}
UP = {"healthy": True, "version": "3.6.14"}
NOW = datetime(2026, 11, 22, 3, 12, tzinfo=timezone.utc)


def readings(cluster, **changes):
    """A healthy cluster as its facts would say it, every host reached."""
    kubelet_nodes = [n.name for n in cluster.hosts if {"control_plane", "worker"} & set(n.roles)]
    base = {
        "expected_nodes": kubelet_nodes,
        "unreachable": [],
        "nodes": {name: {"ready": True} for name in kubelet_nodes},
        "versions": {name: V for name in kubelet_nodes},
        "etcd": {m.name: UP for m in etcd.member_nodes(cluster)},
        "etcd_installed": {m.name: "3.6.14" for m in etcd.member_nodes(cluster)}
        if cluster.etcd.topology == "external" else {},
        "vip": {h.name: i == 0 for i, h in enumerate(report.vip_candidates(cluster))},
        "haproxy": {h.name: {p.name: True for p in cluster.control_planes} for h in cluster.lb_hosts},
        "certificates": {p.name: {"/etc/kubernetes/pki/apiserver.crt": "2027-11-22T03:12:00Z",
                                  "/etc/kubernetes/pki/ca.crt": "2035-11-20T03:12:00Z"} for p in cluster.control_planes},
        "api_url": f"https://{cluster.api_address}:{cluster.api.port}",
        "api_ok": True,
    }
    return {**base, **changes}


def test_a_healthy_ha_cluster(monkeypatch):
    monkeypatch.setenv("KUBEHA_STATE_DIR", str(Path.home() / ".local/state/kubeha"))
    cluster = shipped("lab-ha")
    lines, problems = report.summary(cluster, readings(cluster), at=NOW)
    assert problems == []
    assert lines == [
        "nodes Ready: 5/5",
        "node versions (kubelet, kubeadm): cp1 v1.35.8 v1.35.8, cp2 v1.35.8 v1.35.8, cp3 v1.35.8 v1.35.8, "
        "w1 v1.35.8 v1.35.8, w2 v1.35.8 v1.35.8",
        "VIP 10.123.0.10 held by lb1",
        "haproxy's apiservers up: lb1 3/3, lb2 3/3",
        "etcd members healthy (external): 3/3",
        "etcd cp1: healthy, etcd 3.6.14",
        "etcd cp2: healthy, etcd 3.6.14",
        "etcd cp3: healthy, etcd 3.6.14",
        "certificates, the first to expire on each host:",
        "  cp1: 2027-11-22 03:12 UTC (in 365 days), apiserver.crt",
        "  cp2: 2027-11-22 03:12 UTC (in 365 days), apiserver.crt",
        "  cp3: 2027-11-22 03:12 UTC (in 365 days), apiserver.crt",
        "API on https://10.123.0.10:6443: ok",
        "reach it from here: kubectl --kubeconfig ~/.local/state/kubeha/lab-ha/kubeops.kubeconfig get nodes",
    ]


def test_stacked_etcd_is_asked_on_the_control_planes():
    cluster = shipped("topology-a")
    assert cluster.etcd.topology == "stacked"
    etcd = {"k1": UP, "k2": {"healthy": False, "version": None}, "k3": UP}
    lines, problems = report.summary(cluster, readings(cluster, etcd=etcd))
    assert problems == []
    assert "etcd members healthy (stacked): 2/3" in lines
    assert "etcd k2: NOT healthy" in lines and "etcd k1: healthy, etcd 3.6.14" in lines
    assert "VIP 172.16.2.110 held by k1" in lines, "kube-vip: a control plane holds it"
    assert not any(line.startswith("haproxy") for line in lines)


@pytest.mark.parametrize("name", ["lab-ha", "topology-a"])
def test_etcd_without_a_majority_fails_the_run(name):
    cluster = shipped(name)
    down = {m.name: {"healthy": False, "version": None} for m in etcd.member_nodes(cluster)}
    down[etcd.member_nodes(cluster)[0].name] = UP
    _, problems = report.summary(cluster, readings(cluster, etcd=down))
    assert problems == ["etcd has lost its majority: 1/3 members healthy"]


def test_unreachable_hosts_are_named_as_not_checked():
    cluster = shipped("lab-ha")
    state = readings(cluster, unreachable=["w2"], versions={n: V for n in ("cp1", "cp2", "cp3", "w1")},
                     vip={"lb2": True}, haproxy={"lb2": {"cp1": True, "cp2": False, "cp3": True}})
    lines, problems = report.summary(cluster, state)
    assert problems == []
    assert lines[0] == "nodes Ready: 4/4 (not reachable, not checked: w2)"
    assert "VIP 10.123.0.10 held by lb2 (not reachable, not checked: lb1)" in lines
    assert "haproxy's apiservers up: lb1 not checked, lb2 2/3" in lines


def test_what_fails_the_run():
    cluster = shipped("lab-ha")
    nodes = {n: {"ready": n != "w1"} for n in ("cp1", "cp2", "cp3", "w1", "w2")}
    lines, problems = report.summary(cluster, readings(cluster, nodes=nodes, api_ok=False))
    assert problems == ["nodes not Ready: w1", "the API does not answer on https://10.123.0.10:6443"]
    assert "API on https://10.123.0.10:6443: NOT answering" in lines


def test_a_member_running_another_version_than_installed_says_so():
    cluster = shipped("lab-compact")
    lines, _ = report.summary(cluster, readings(cluster, etcd_installed={"k1": "3.6.15", "k2": "3.6.14"}))
    assert "etcd k1: healthy, etcd 3.6.14 (installed 3.6.15: it runs that once restarted)" in lines
    assert "etcd k2: healthy, etcd 3.6.14" in lines


def test_no_vip_holder_and_haproxy_stats_not_answering():
    cluster = shipped("lab-ha")
    lines, problems = report.summary(cluster, readings(cluster, vip={"lb1": False, "lb2": False},
                                                       haproxy={"lb1": None, "lb2": {"cp1": True}}))
    assert "VIP 10.123.0.10 held by no checked host" in lines
    assert "haproxy's apiservers up: lb1 stats not answering, lb2 1/1" in lines
    assert problems == [], "the API answering through the VIP is what fails a run"


def test_client_side_only_has_no_vip_and_no_haproxy(tmp_path):
    cluster, _ = cluster_copy("lab-compact", tmp_path, **{"api.mode": "none", "api.vip": None,
                                                          "workers.api_access": "localhost_proxy"})
    lines, problems = report.summary(cluster, readings(cluster))
    assert problems == []
    assert not any(line.startswith(("VIP ", "haproxy")) for line in lines)
    assert f"API on https://{cluster.first_control_plane.address}:6443: ok" in lines
