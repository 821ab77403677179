"""kubeadm's configuration for every node of every shipped cluster file: its content, and
kubeadm's own validation with the real kubeadm the artifact build makes."""

import subprocess
import sys

import pytest
import yaml

from cluster import kubeadm
from cluster.secrets import ClusterSecrets


def documents(text):
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}


@pytest.fixture
def loaded(any_cluster, state_dir):
    return any_cluster, ClusterSecrets(any_cluster).ensure()


def test_init_configuration(loaded):
    cluster, secrets = loaded
    docs = documents(kubeadm.init_config(cluster, cluster.first_control_plane, secrets))
    assert set(docs) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration",
                         "KubeProxyConfiguration"}
    config = docs["ClusterConfiguration"]
    assert config["controlPlaneEndpoint"] == f"{cluster.api.endpoint_name}:{cluster.api.port}"
    assert config["networking"]["podSubnet"] == cluster.network.pod_cidr
    sans = config["apiServer"]["certSANs"]
    assert cluster.api_address in sans and cluster.api.endpoint_name in sans and "127.0.0.1" in sans
    if cluster.etcd.topology == "external":
        assert [f"https://{h.address}:2379" for h in cluster.etcd_hosts] == config["etcd"]["external"]["endpoints"]
    else:
        assert "local" in config["etcd"]
    registration = docs["InitConfiguration"]["nodeRegistration"]
    assert registration["name"] == cluster.first_control_plane.name
    assert ("taints" in registration) == cluster.kubernetes.control_planes_schedulable
    assert (docs["KubeletConfiguration"].get("failCgroupV1") is False) == cluster.kubernetes.allow_cgroup_v1


def test_every_join_pins_the_ca(loaded):
    cluster, secrets = loaded
    for node in cluster.hosts:
        if not {"control_plane", "worker"} & set(node.roles):
            continue
        join = documents(kubeadm.join_config(cluster, node, secrets))["JoinConfiguration"]
        token = join["discovery"]["bootstrapToken"]
        assert token["caCertHashes"] == [secrets.ca_cert_hash()]
        assert "unsafeSkipCAVerification" not in token
        assert ("controlPlane" in join) == ("control_plane" in node.roles)


def built_kubeadm():
    result = subprocess.run([sys.executable, "-m", "artifacts", "kubeadm-path"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.mark.artifacts
def test_kubeadm_accepts_every_generated_config(loaded, tmp_path):
    binary = built_kubeadm()
    if not binary:
        pytest.skip("kubeadm is not built: python3 -m artifacts build")
    cluster, secrets = loaded
    configs = {"init": kubeadm.init_config(cluster, cluster.first_control_plane, secrets)}
    for node in cluster.hosts:
        if {"control_plane", "worker"} & set(node.roles):
            configs[f"join-{node.name}"] = kubeadm.join_config(cluster, node, secrets)
    for name, text in configs.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        result = subprocess.run([binary, "config", "validate", "--config", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_the_stored_configuration_drifts_only_in_what_changes_after_init(loaded):
    cluster, secrets = loaded
    stored = yaml.safe_load(kubeadm.cluster_config(cluster, secrets))
    assert stored["kind"] == "ClusterConfiguration"
    assert kubeadm.cluster_config_drift(cluster, stored) == {}
    # as kubeadm stores it: the same duration, other fields defaulted
    assert kubeadm.cluster_config_drift(cluster, {**stored, "certificateValidityPeriod": "8760h0m0.000s",
                                                  "dns": {}}) == {}
    drift = kubeadm.cluster_config_drift(cluster, {**stored, "certificateValidityPeriod": "48h0m0s"})
    assert drift == {"certificateValidityPeriod": ("48h0m0s", "8760h0m0s")}
    if cluster.etcd.topology == "external":
        fewer = {**stored, "etcd": {"external": {"endpoints": kubeadm.etcd_endpoints(cluster)[1:]}}}
        assert set(kubeadm.cluster_config_drift(cluster, fewer)) == {"etcd.external.endpoints"}
    else:
        assert kubeadm.etcd_endpoints(cluster) == []
