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
    for key in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "pause", "coredns"):
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
