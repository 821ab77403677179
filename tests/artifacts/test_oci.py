"""The OCI archive writer, read back with our reader and (when installed) with skopeo."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from artifacts import components, oci

skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")


def _make(tmp_path):
    l1 = oci.Layer()
    l1.add_bytes("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
    l1.add_dir("tmp", mode=0o1777)
    b1 = l1.write(str(tmp_path / "l1.tgz"))
    l2 = oci.Layer(mtime=1700000000)
    src = tmp_path / "hello"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    l2.add_file("usr/local/bin/hello", str(src), mode=0o755)
    l2.add_symlink("usr/bin/hi", "../local/bin/hello")
    l2.add_bytes("cap", b"x", xattrs={"security.capability": components.cap_net_bind_service_xattr()})
    b2 = l2.write(str(tmp_path / "l2.tgz"))
    layers = [(str(tmp_path / "l1.tgz"),) + b1, (str(tmp_path / "l2.tgz"),) + b2]
    archive = str(tmp_path / "img.oci.tar")
    digest = oci.write_image(archive, "registry.k8s.io/test/hello:v1.2.3", layers,
                             entrypoint=["/usr/local/bin/hello"], user="65532", labels={"a": "b"})
    return archive, digest, layers


def test_layer_digests_and_contents(tmp_path):
    archive, digest, layers = _make(tmp_path)
    for blob, d, size, diff_id in layers:
        data = open(blob, "rb").read()
        assert d == "sha256:" + hashlib.sha256(data).hexdigest()
        assert size == len(data)
        assert diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    with tarfile.open(layers[1][0]) as t:
        names = t.getnames()
        assert names == sorted(names)
        assert "usr/" in [m.name + ("/" if m.isdir() else "") for m in t.getmembers()]
        hello = t.getmember("usr/local/bin/hello")
        assert (hello.mode, hello.uid, hello.mtime) == (0o755, 0, 1700000000)
        assert t.getmember("usr/bin/hi").issym()
        cap = t.getmember("cap").pax_headers["SCHILY.xattr.security.capability"]
        assert cap.encode("utf-8", "surrogateescape") == components.cap_net_bind_service_xattr()
    with tarfile.open(layers[0][0]) as t:
        assert t.getmember("tmp").mode == 0o1777


def test_layers_are_reproducible(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert _make(a)[1] == _make(b)[1]


def test_index_manifest_config(tmp_path):
    archive, digest, layers = _make(tmp_path)
    index, manifest, config = oci.read_index(archive)
    m = index["manifests"][0]
    assert m["digest"] == digest
    assert m["annotations"]["org.opencontainers.image.ref.name"] == "v1.2.3"
    assert m["annotations"]["io.containerd.image.name"] == "registry.k8s.io/test/hello:v1.2.3"
    assert [l["digest"] for l in manifest["layers"]] == [l[1] for l in layers]
    assert config["rootfs"]["diff_ids"] == [l[3] for l in layers]
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/hello"]
    assert config["config"]["User"] == "65532"
    with tarfile.open(archive) as t:
        assert json.load(t.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}


@skopeo
def test_skopeo_reads_it_back(tmp_path):
    archive, digest, layers = _make(tmp_path)
    out = json.loads(subprocess.run(["skopeo", "inspect", "oci-archive:" + archive],
                                    check=True, capture_output=True, text=True).stdout)
    assert out["Digest"] == digest
    assert out["Layers"] == [l[1] for l in layers]
    assert out["Architecture"] == "amd64" and out["Os"] == "linux"
    # a copy verifies every blob against its digest
    subprocess.run(["skopeo", "copy", "-q", "oci-archive:" + archive, "dir:" + str(tmp_path / "copy")],
                   check=True)
    assert (tmp_path / "copy" / "manifest.json").exists()


def test_bad_paths_are_refused():
    l = oci.Layer()
    for bad in ("", "/", "a/../b"):
        with pytest.raises(ValueError):
            l.add_bytes(bad, b"")


def test_a_layer_may_not_hide_base_symlinks(tmp_path):
    from artifacts import util
    base = oci.Layer()
    base.add_symlink("bin", "usr/bin")
    base.add_symlink("etc/service", "/etc/runit/runsvdir/default")
    blob = str(tmp_path / "base.tgz")
    lower = (blob,) + base.write(blob)
    ok = oci.Layer()
    ok.add_bytes("usr/bin/x", b"")
    components._check_not_shadowing(ok, lower)
    bad = oci.Layer()
    bad.add_bytes("bin/x", b"")
    with pytest.raises(util.Failed):
        components._check_not_shadowing(bad, lower)
    svc = oci.Layer()
    svc.add_bytes("etc/service/available/felix/run", b"")
    components._check_not_shadowing(svc, lower, allow=("etc/service",))
