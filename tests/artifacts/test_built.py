"""Checks on the built artifacts; skipped when they are not built (python3 -m artifacts build)."""
import json
import os
import shutil
import subprocess
import tarfile

import pytest
import yaml

from artifacts import build, layout, versions as V

pytestmark = pytest.mark.artifacts


def _need(path):
    if not os.path.exists(path):
        pytest.skip("not built: %s" % path)
    return path


def _run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def test_kubeadm_version_and_helper():
    kubeadm = _need(layout.file_path("kubeadm"))
    assert _run(kubeadm, "version", "-o", "short") == V.VERSIONS["kubernetes"]
    out = subprocess.run(["python3", "-m", "artifacts", "kubeadm-path"], capture_output=True, text=True,
                         cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    assert out.returncode == 0 and out.stdout.strip() == kubeadm


def test_kubeadm_expects_the_pinned_coredns_and_pause():
    kubeadm = _need(layout.file_path("kubeadm"))
    images = _run(kubeadm, "config", "images", "list", "--kubernetes-version", V.VERSIONS["kubernetes"])
    refs = layout.image_refs()
    for key in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "pause", "coredns",
                "etcd"):
        assert refs[key] in images.splitlines(), (key, images)


def test_kubelet_and_kubectl_versions():
    kubelet = _need(layout.file_path("kubelet"))
    assert _run(kubelet, "--version") == "Kubernetes " + V.VERSIONS["kubernetes"]
    kubectl = _need(layout.file_path("kubectl"))
    out = json.loads(_run(kubectl, "version", "--client", "-o", "json"))
    assert out["clientVersion"]["gitVersion"] == V.VERSIONS["kubernetes"]


def _member_run(tgz, member, tmp_path, *args):
    with tarfile.open(_need(tgz)) as t:
        t.extract(member, tmp_path)
    return _run(str(tmp_path / member), *args)


def test_etcd_tarball(tmp_path):
    ver = V.VERSIONS["etcd"]
    top = "etcd-%s-linux-amd64" % ver
    out = _member_run(layout.file_path("etcd"), top + "/etcd", tmp_path, "--version")
    assert "etcd Version: %s" % ver.lstrip("v") in out
    out = _member_run(layout.file_path("etcd"), top + "/etcdctl", tmp_path, "version")
    assert "etcdctl version: %s" % ver.lstrip("v") in out
    with tarfile.open(layout.file_path("etcd")) as t:
        assert top + "/etcdutl" in t.getnames()


def test_containerd_tarball(tmp_path):
    tgz = layout.file_path("containerd")
    out = _member_run(tgz, "bin/containerd", tmp_path, "--version")
    assert "v" + V.VERSIONS["containerd"].lstrip("v") in out
    with tarfile.open(tgz) as t:
        assert {"bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr"} <= set(t.getnames())


def test_runc():
    out = _run(_need(layout.file_path("runc")), "--version")
    assert out.splitlines()[0] == "runc version " + V.VERSIONS["runc"].lstrip("v")
    assert "seccomp" in out


def test_crictl(tmp_path):
    out = _member_run(layout.file_path("crictl"), "crictl", tmp_path, "--version")
    assert out == "crictl version " + V.VERSIONS["crictl"]


def test_cni_plugins(tmp_path):
    tgz = layout.file_path("cni_plugins")
    with tarfile.open(_need(tgz)) as t:
        names = {n.lstrip("./") for n in t.getnames()}
    assert {"bridge", "host-local", "loopback", "portmap", "bandwidth", "tuning"} <= names
    with tarfile.open(tgz) as t:
        t.extract("./portmap", tmp_path)
    r = subprocess.run([str(tmp_path / "portmap"), "--version"], capture_output=True, text=True, env={})
    assert "CNI portmap plugin %s" % V.VERSIONS["cni_plugins"] in (r.stdout + r.stderr)


def test_checksums_file_matches_the_files():
    path = _need(layout.checksums_path())
    data = yaml.safe_load(open(path)) or {}
    import hashlib
    for comp, (ver, url) in layout.file_urls().items():
        p = layout.url_to_path(url)
        if not os.path.exists(p):
            continue
        h = hashlib.sha256(open(p, "rb").read()).hexdigest()
        assert data.get(comp, {}).get(ver, {}).get("amd64") == h, "%s: checksums.yaml is stale" % comp
        if comp in layout.ARCH_INDEPENDENT:
            assert data[comp][ver]["any"] == h
        assert open(p + ".sha256").read().split()[0] == h


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")
def test_image_archives_read_back():
    seen = 0
    for img in build.images_index():
        if not img["present"]:
            continue
        out = json.loads(_run("skopeo", "inspect", "--config", "oci-archive:" + img["archive"]))
        assert out["architecture"] == "amd64"
        seen += 1
    if not seen:
        pytest.skip("no image built")


def test_kubeadm_validates_a_config(tmp_path):
    """What the deploy's tests do with `python3 -m artifacts kubeadm-path`."""
    kubeadm = _need(layout.file_path("kubeadm"))
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text("""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
controlPlaneEndpoint: 10.123.0.100:6443
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
""" % V.VERSIONS["kubernetes"])
    r = subprocess.run([kubeadm, "config", "validate", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: nonsense\n")
    r = subprocess.run([kubeadm, "config", "validate", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0


@pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("docker-registry")),
                    reason="needs skopeo and Debian's docker-registry")
def test_push_to_a_loopback_registry(tmp_path):
    img = [i for i in build.images_index() if i["key"] == "pause"][0]
    _need(img["archive"])
    import socket
    import time
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = tmp_path / "registry.yml"
    conf.write_text("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n"
                    "log:\n  level: warn\n" % (tmp_path / "data", port))
    reg = subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        r = subprocess.run(["python3", "-m", "artifacts", "push", "--registry", "127.0.0.1:%d" % port, "pause"],
                           capture_output=True, text=True, timeout=120,
                           cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
        assert r.returncode == 0, r.stderr
        out = json.loads(_run("skopeo", "inspect", "--tls-verify=false",
                              "docker://127.0.0.1:%d/%s" % (port, layout.registry_path(img["ref"]))))
        assert out["Architecture"] == "amd64"
    finally:
        reg.terminate()
        reg.wait(10)


def test_calico_node_is_cgo_linked_against_libbpf():
    """Felix calls libbpf at start even with BPF off; with cgo off that is a panicking stub."""
    node = _need(os.path.join(layout.root(), "build", "calico", V.MODULES["calico"]["tag"], "bin", "calico-node"))
    info = _run("go", "version", "-m", node)
    assert "CGO_ENABLED=1" in info, info
    out = _run("file", "-L", node) if shutil.which("file") else ""
    assert not out or "dynamically linked" in out, out
    # libbpf is linked in (static archive): its version string is in the binary
    with open(node, "rb") as f:
        data = f.read()
    assert b"libbpf: elf: failed to open" in data
