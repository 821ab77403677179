"""The host checks' verdict (cluster/host_checks.py: findings) from a table of host facts, and
the CA files they compare per role."""

import pytest

from cluster import host_checks, system
from cluster.secrets import ClusterSecrets
from support import cluster_copy, shipped


def facts(**changes):
    """A healthy Debian 13 amd64 host with cgroup v2, 4 CPUs, 8 GB and inotify to spare."""
    base = {"os_id": "debian", "os_version": "13", "arch": "x86_64", "cgroup": 2, "cpus": 4, "memory_mb": 8000,
            "container": None, "swap": {"active": [], "fstab": []},
            "time": {"service": "chrony", "synchronized": True}, "containerd": None, "firewalls": [],
            "inotify": {"max_user_instances": 8192, "max_user_watches": 1048576, "instances": 40},
            "ca_sha256": {}}
    return {**base, **changes}


def verdict(cluster, node_name, local_ca=None, **changes):
    return host_checks.findings(cluster, cluster.host(node_name), facts(**changes), local_ca or {})


@pytest.mark.parametrize("os_id, version, supported", [
    ("ubuntu", "22.04", True), ("ubuntu", "24.04", True), ("ubuntu", "20.04", False), ("ubuntu", "24.10", False),
    ("debian", "12", True), ("debian", "13", True), ("debian", "11", False), ("debian", "", False),
    ("rhel", "9.4", True), ("rhel", "10.0", True), ("rocky", "9.5", True), ("rocky", "8.10", False),
    ("centos", "7", False), ("", "", False),
])
def test_supported_systems(os_id, version, supported):
    errors, _ = verdict(shipped("lab-ha"), "lb1", os_id=os_id, os_version=version)
    if supported:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith("lb1: ") and "is not supported" in errors[0]
        assert "Ubuntu 22.04/24.04, Debian 12/13, RHEL 9/10, Rocky Linux 9/10" in errors[0]


def test_timesyncd_is_refused_where_it_has_no_package(tmp_path):
    cluster, _ = cluster_copy("lab-ha", tmp_path, **{"prep.time_sync": "systemd-timesyncd"})
    assert verdict(cluster, "w1", os_id="ubuntu", os_version="24.04")[0] == []
    errors, _ = verdict(cluster, "w1", os_id="rocky", os_version="9.5")
    assert errors == ["w1: prep.time_sync systemd-timesyncd has no package on rocky 9.5: use chrony"]


def test_architecture_without_checksums_fails_only_hosts_that_download():
    cluster = shipped("lab-ha")
    errors, _ = verdict(cluster, "w1", arch="s390x")
    assert errors == ["w1: architecture s390x is not supported (supported: amd64, arm64)"]
    assert verdict(cluster, "lb1", arch="s390x")[0] == [], "an lb host downloads no release file"
    assert verdict(cluster, "w1", arch="aarch64")[0] == []


def test_a_version_without_a_pinned_checksum_names_the_component(tmp_path):
    path = tmp_path / "checksums.yaml"  # the version must pass the cluster file's own check
    path.write_text("containerd:\n  '2.2.99':\n    arm64: " + "a" * 64 + "\n")
    cluster, _ = cluster_copy("lab-ha", tmp_path, **{"containerd.version": "2.2.99",
                                                     "offline.checksums_file": str(path)})
    errors, _ = verdict(cluster, "cp1")
    assert errors == ["cp1: no sha256 is pinned for containerd 2.2.99 on amd64: add them to offline.checksums_file"]


def test_cgroup_v1_needs_the_knob_for_kubelet_1_35():
    example = shipped("topology-a")  # allow_cgroup_v1 is off there
    errors, _ = verdict(example, "k4", cgroup=1)
    assert len(errors) == 1 and "kubernetes.allow_cgroup_v1" in errors[0] and errors[0].startswith("k4: ")
    assert verdict(shipped("lab-compact"), "k4", cgroup=1)[0] == [], "the lab turns the knob on"
    assert verdict(example, "k4", cgroup=2)[0] == []
    assert verdict(shipped("topology-b"), "lb1", cgroup=1)[0] == [], "no kubelet on an lb host"


def test_small_control_planes_fail_and_small_workers_warn():
    cluster = shipped("lab-ha")
    errors, _ = verdict(cluster, "cp1", cpus=1, memory_mb=1500)
    assert errors == ["cp1: 1 CPU(s); a control plane needs at least 2",
                      "cp1: 1500 MB memory; a control plane needs at least 1700 MB"]
    errors, warnings = verdict(cluster, "w1", cpus=1, memory_mb=1500)
    assert errors == [] and len(warnings) == 2
    assert verdict(cluster, "lb1", cpus=1, memory_mb=500) == ([], [])


def inotify(limit, used):
    return {"max_user_instances": limit, "max_user_watches": 8192, "instances": used}


@pytest.mark.parametrize("node", ["cp1", "w1"])
@pytest.mark.parametrize("limit, used, outcome", [
    (128, 100, "error"),  # 28 free: the kubelet's cAdvisor would fail
    (128, 65, "error"),  # 63 free
    (128, 64, "warning"),  # 64 free: enough to start, little for the pods
    (512, 257, "warning"),  # 255 free
    (512, 256, None),  # 256 free
    (8192, 40, None),
])
def test_a_kubelet_host_needs_free_inotify_instances(node, limit, used, outcome):
    errors, warnings = verdict(shipped("lab-ha"), node, inotify=inotify(limit, used))
    about_inotify = {"error": [m for m in errors if "inotify" in m], "warning": [m for m in warnings if "inotify" in m]}
    if outcome is None:
        assert about_inotify == {"error": [], "warning": []}
        return
    (text,) = about_inotify[outcome]
    assert about_inotify[{"error": "warning", "warning": "error"}[outcome]] == []
    assert text.startswith(f"{node}: {limit - used} free inotify instances ({used} in use of "
                           f"fs.inotify.max_user_instances {limit}); ")
    assert "raise fs.inotify.max_user_instances" in text
    assert ("inotify_init: too many open files" in text) == (outcome == "error")


def test_inotify_matters_only_where_a_kubelet_runs():
    errors, warnings = verdict(shipped("lab-ha"), "lb1", inotify=inotify(128, 128))
    assert (errors, warnings) == ([], [])


def test_unreadable_inotify_limits_warn():
    _, warnings = verdict(shipped("lab-ha"), "w1", inotify=inotify(None, 3))
    assert warnings == ["w1: cannot read the inotify limits (fs.inotify.max_user_instances)"]


def test_a_live_clusters_other_ca_is_refused():
    cluster = shipped("lab-ha")
    path = "/etc/kubernetes/pki/ca.crt"
    same = verdict(cluster, "cp1", local_ca={path: "a" * 64}, ca_sha256={path: "a" * 64})
    assert same[0] == []
    fresh = verdict(cluster, "cp1", local_ca={path: "a" * 64}, ca_sha256={path: None})
    assert fresh[0] == []
    errors, _ = verdict(cluster, "cp1", local_ca={path: "a" * 64}, ca_sha256={path: "b" * 64})
    assert len(errors) == 1 and errors[0].startswith(f"cp1: {path} is another CA")
    assert "would replace a live cluster's CA" in errors[0]


def test_warnings():
    _, warnings = verdict(shipped("lab-ha"), "w1", container="systemd-nspawn",
                          swap={"active": ["/dev/sda2"], "fstab": []}, firewalls=["firewalld"],
                          containerd={"version": "1.6.20"}, time={"service": "chrony", "synchronized": False})
    text = "\n".join(warnings)
    assert "swap is on" in text and "firewalld" in text and "containerd 1.6.20" in text
    assert "not synchronized" not in text, "a container's clock is the machine's"


def test_ca_files_checked_per_role(tmp_path, state_dir):
    cluster = shipped("lab-ha")
    secrets = ClusterSecrets(cluster).ensure()
    plane = host_checks.ca_files(cluster, secrets, ("control_plane", "etcd"))
    assert sorted(plane) == ["/etc/etcd/pki/ca.crt", "/etc/kubernetes/pki/ca.crt",
                             "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/front-proxy-ca.crt"]
    assert host_checks.ca_files(cluster, secrets, ("worker",)) == {}
    assert all(path.is_file() for path in plane.values())


def test_an_external_load_balancer_named_by_dns_is_left_to_dns(tmp_path):
    cluster, _ = cluster_copy("topology-b", tmp_path, **{
        "api.mode": "external", "api.vip": None, "api.external_address": "api.example.internal",
        "hosts": [{"name": "cp1", "address": "192.168.10.21", "roles": ["control_plane", "etcd"]},
                  {"name": "w1", "address": "192.168.10.31", "roles": ["worker"]}]})
    assert system.hosts_entries(cluster, cluster.host("cp1")) == ["192.168.10.21 cp1", "192.168.10.31 w1"]
    _, warnings = verdict(cluster, "cp1")
    assert any("DNS must resolve it" in w for w in warnings)
