"""Paths, URLs, image names and checksums.yaml: pure functions, fast."""
import os

import pytest
import yaml

from artifacts import layout, versions as V


def test_files_follow_the_design_layout():
    base = "/c"
    want = {
        "kubeadm": "/c/files/dl.k8s.io/release/v1.35.8/bin/linux/amd64/kubeadm",
        "kubelet": "/c/files/dl.k8s.io/release/v1.35.8/bin/linux/amd64/kubelet",
        "kubectl": "/c/files/dl.k8s.io/release/v1.35.8/bin/linux/amd64/kubectl",
        "etcd": "/c/files/github.com/etcd-io/etcd/releases/download/v3.6.14/etcd-v3.6.14-linux-amd64.tar.gz",
        "containerd": "/c/files/github.com/containerd/containerd/releases/download/v2.2.3/"
                      "containerd-2.2.3-linux-amd64.tar.gz",
        "runc": "/c/files/github.com/opencontainers/runc/releases/download/v1.3.3/runc.amd64",
        "cni_plugins": "/c/files/github.com/containernetworking/plugins/releases/download/v1.8.0/"
                       "cni-plugins-linux-amd64-v1.8.0.tgz",
    }
    for comp, path in want.items():
        assert layout.file_path(comp, base) == path
    # crictl and calico follow whatever version is built, with the upstream URL scheme.
    assert layout.file_path("crictl", base, {"crictl": "v1.35.0"}) == (
        "/c/files/github.com/kubernetes-sigs/cri-tools/releases/download/v1.35.0/crictl-v1.35.0-linux-amd64.tar.gz")
    assert layout.file_path("calico_manifest", base, {"calico": "v3.31.5"}) == (
        "/c/files/raw.githubusercontent.com/projectcalico/calico/v3.31.5/manifests/calico.yaml")


def test_every_checksum_component_has_a_file():
    assert set(layout.file_urls()) == set(layout.CHECKSUM_COMPONENTS)


def test_url_to_path_rejects_odd_urls():
    for bad in ("ftp://x/y", "dl.k8s.io/x", "https://", "https://h/../etc/passwd"):
        with pytest.raises(ValueError):
            layout.url_to_path(bad, "/c")


def test_root_is_overridable(tmp_cache):
    assert layout.root() == str(tmp_cache)
    assert layout.checksums_path() == os.path.join(str(tmp_cache), "checksums.yaml")


def test_image_refs_and_registry_paths():
    refs = layout.image_refs()
    assert refs["kube-apiserver"] == "registry.k8s.io/kube-apiserver:v1.35.8"
    assert refs["pause"] == "registry.k8s.io/pause:3.10.1"
    assert refs["coredns"] == "registry.k8s.io/coredns/coredns:v1.13.1"
    assert refs["etcd"] == "registry.k8s.io/etcd:3.6.6-0"
    # what the design's registry_mirror expects
    assert layout.registry_path(refs["kube-apiserver"]) == "kube-apiserver:v1.35.8"
    assert layout.registry_path(refs["coredns"]) == "coredns/coredns:v1.13.1"
    assert layout.registry_path(refs["pause"]) == "pause:3.10.1"
    assert layout.registry_path("quay.io/calico/node:v3.31.5") == "calico/node:v3.31.5"
    assert layout.registry_path("ghcr.io/kube-vip/kube-vip:v1.0.3") == "kube-vip/kube-vip:v1.0.3"
    assert layout.registry_path("calico/node:v3.31.5") == "calico/node:v3.31.5"
    assert layout.archive_name(refs["coredns"]) == "coredns_coredns_v1.13.1.oci.tar"
    with pytest.raises(ValueError):
        layout.split_ref("registry.k8s.io/pause")


def test_every_image_the_deploy_runs_is_listed_and_the_e2e_workload():
    refs = layout.image_refs()
    assert set(refs) == {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
                         "pause", "coredns", "etcd", "kube-vip", "calico-cni", "calico-node",
                         "calico-kube-controllers", "agnhost"}
    # one archive per image, no collisions
    assert len({layout.archive_name(r) for r in refs.values()}) == len(refs)


def test_checksums_yaml_roundtrip_and_format(tmp_cache):
    sha = "ab" * 32
    for comp in ("kubeadm", "containerd", "calico_manifest"):
        p = layout.file_path(comp)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p + ".sha256", "w") as f:
            f.write("%s  %s\n" % (sha, os.path.basename(p)))
    path, data = layout.write_checksums()
    loaded = yaml.safe_load(open(path))
    assert loaded == {
        "kubeadm": {"v1.35.8": {"amd64": sha}},
        "containerd": {"2.2.3": {"amd64": sha}},      # a string, not a float or a date
        # arch-independent: under "any" (what cluster/downloads.py reads) and amd64
        "calico_manifest": {V.VERSIONS["calico"]: {"amd64": sha, "any": sha}},
    }
    assert loaded == data
    text = open(path).read()
    assert text.index("kubeadm:") < text.index("containerd:") < text.index("calico_manifest:")


def test_checksums_refuse_garbage():
    with pytest.raises(ValueError):
        layout.render_checksums({"kubeadm": {"v1": {"amd64": "nothex"}}})


def test_versions_pins_are_consistent():
    assert set(V.VERSIONS) == set(V.WANTED)
    for k in V.SUBSTITUTIONS:
        assert V.VERSIONS[k] != V.WANTED[k]
    for k, v in V.VERSIONS.items():
        if k not in V.SUBSTITUTIONS:
            assert v == V.WANTED[k], k
    assert V.MODULES["kubernetes"]["version"] == V.VERSIONS["kubernetes"]
    assert V.MODULES["calico"]["tag"] == V.VERSIONS["calico"]
    assert V.MODULES["kube_vip"]["version"] == V.VERSIONS["kube_vip"]
    assert V.MODULES["crictl"]["version"] == V.VERSIONS["crictl"]
    assert V.staging_version("v1.35.8") == "v0.35.8"
    # every pinned go.sum line is well formed
    for line in V.PINNED_GO_SUMS.splitlines():
        mod, ver, h = line.split()
        assert h.startswith("h1:") and h.endswith("=")


def test_cluster_knobs_match_the_pins():
    from artifacts import cli
    knobs = yaml.safe_load(cli.cluster_knobs())
    assert knobs["kubernetes"]["version"] == V.VERSIONS["kubernetes"].lstrip("v")
    assert knobs["containerd"]["crictl_version"] == V.VERSIONS["crictl"].lstrip("v")
    assert knobs["containerd"]["version"] == V.VERSIONS["containerd"]
    assert knobs["calico"] == {"version": V.VERSIONS["calico"].lstrip("v"), "mode": "vxlan", "install": "manifest"}
    assert knobs["kube_vip"]["version"] == V.VERSIONS["kube_vip"].lstrip("v")
