"""Run the built images with the built containerd and runc: catches images that only look
right (a layer that hid /bin/sh in calico/node was found this way).  Needs root, the built
files and images; skipped otherwise.  Everything lives in a temporary directory with its own
socket; containers get no network (ctr's default: a new namespace with only lo)."""
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from artifacts import layout, versions as V

pytestmark = pytest.mark.artifacts


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tgz, runc = layout.file_path("containerd"), layout.file_path("runc")
    if not (os.path.exists(tgz) and os.path.exists(runc)):
        pytest.skip("containerd/runc not built")
    d = tmp_path_factory.mktemp("ctrd")
    with tarfile.open(tgz) as t:
        t.extractall(d)
    shutil.copy(runc, d / "bin" / "runc")
    sock = d / "containerd.sock"
    (d / "config.toml").write_text(
        'version = 3\nroot = "%s"\nstate = "%s"\n[grpc]\n  address = "%s"\n' % (d / "root", d / "state", sock))
    env = dict(os.environ, PATH="%s:%s" % (d / "bin", os.environ["PATH"]))
    log = open(d / "containerd.log", "w")
    proc = subprocess.Popen([str(d / "bin" / "containerd"), "--config", str(d / "config.toml")],
                            stdout=log, stderr=log, env=env)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)

        def run(*args, check=True):
            r = subprocess.run([str(d / "bin" / "ctr"), "-a", str(sock), "-n", "test"] + list(args),
                               capture_output=True, text=True, env=env, timeout=120)
            if check and r.returncode != 0:
                raise AssertionError("ctr %s: %s" % (" ".join(args), r.stderr[-2000:]))
            # the container's stderr comes through ctr's; drop containerd's own warnings
            err = "".join(l for l in r.stderr.splitlines(True) if "level=warning" not in l)
            return r.stdout + err
        yield run
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        subprocess.run(["umount", "-R", str(d / "root")], capture_output=True)
        subprocess.run(["umount", "-R", str(d / "state")], capture_output=True)


def _image(ctr, key):
    ref = layout.image_refs()[key]
    archive = layout.archive_path(ref)
    if not os.path.exists(archive):
        pytest.skip("not built: %s" % archive)
    ctr("images", "import", archive)
    return ref


_n = [0]


def _run_in(ctr, ref, *cmd, check=True):
    _n[0] += 1
    return ctr("run", "--rm", ref, "t%d" % _n[0], *cmd, check=check)


def test_control_plane_images(ctr):
    for key in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        ref = _image(ctr, key)
        assert _run_in(ctr, ref, key, "--version").strip() == "Kubernetes " + V.VERSIONS["kubernetes"]


def test_kube_proxy_has_its_network_tools(ctr):
    ref = _image(ctr, "kube-proxy")
    out = _run_in(ctr, ref, "sh", "-c", "kube-proxy --version && iptables --version && iptables-legacy --version"
                  " && nft --version && command -v ipset && conntrack --version")
    assert "Kubernetes " + V.VERSIONS["kubernetes"] in out
    assert "(nf_tables)" in out and "(legacy)" in out


def test_calico_images(ctr):
    node = _image(ctr, "calico-node")
    out = _run_in(ctr, node, "sh", "-c", "calico-node -v && which runsvdir svlogd && test -x /usr/sbin/start_runit"
                  " && test -x /etc/service/available/felix/run && test -L /bin")
    assert V.VERSIONS["calico"] in out
    # calico-node is cgo-linked (libbpf static): its shared libraries must all be in the image.
    # With cgo off, felix/bpf/libbpf was the panicking stub Felix hits at start (the lab).
    libs = _run_in(ctr, node, "ldd", "/usr/bin/calico-node")
    assert "not found" not in libs and "libelf.so.1" in libs and "libz.so.1" in libs, libs
    # the probes' code paths run (no felix here, so they fail cleanly, without a panic)
    for probe in ("-felix-live", "-felix-ready"):
        out = _run_in(ctr, node, "calico-node", probe, check=False)
        assert "panic" not in out and "SIGSEGV" not in out, (probe, out)
    cni = _image(ctr, "calico-cni")
    assert _run_in(ctr, cni, "/opt/cni/bin/calico-ipam", "-v").strip() == V.VERSIONS["calico"]
    kc = _image(ctr, "calico-kube-controllers")
    assert "-status-file" in _run_in(ctr, kc, "/usr/bin/kube-controllers", "-h", check=False)
    assert "--ready" in _run_in(ctr, kc, "/usr/bin/check-status", "-h", check=False)


def test_coredns_binds_53_as_nonroot(ctr, tmp_path):
    ref = _image(ctr, "coredns")
    (tmp_path / "Corefile").write_text(".:53 {\n  whoami\n}\n")
    os.chmod(tmp_path, 0o755)          # coredns runs as nonroot and must read it
    ctr("run", "-d", "--mount", "type=bind,src=%s,dst=/etc/coredns,options=rbind:ro" % tmp_path,
        ref, "dns", "/coredns", "-conf", "/etc/coredns/Corefile")
    try:
        time.sleep(2)
        tasks = ctr("task", "ls")
        assert any(l.split()[0] == "dns" and "RUNNING" in l for l in tasks.splitlines()[1:]), tasks
        status = ctr("task", "exec", "--exec-id", "st", "dns", "/coredns", "-version")
        assert V.VERSIONS["coredns"].lstrip("v") in status
    finally:
        ctr("task", "kill", "-s", "KILL", "dns", check=False)
        time.sleep(1)
        ctr("containers", "rm", "dns", check=False)


def test_small_images(ctr):
    assert "Kube-VIP" in _run_in(ctr, _image(ctr, "kube-vip"), "/kube-vip", "version")
    assert "etcd Version: " + V.VERSIONS["etcd_image"].split("-")[0] in \
        _run_in(ctr, _image(ctr, "etcd"), "etcd", "--version")
    _image(ctr, "pause")
