"""The container runtime's files, rendered for every example and lab cluster file: containerd's
config.toml (version 3, containerd 2.x), the registries' hosts.toml, crictl.yaml and
containerd.service, parsed by what reads them.

containerd itself checks the configuration when the artifact build has left its release
archive on this machine (marked `artifacts`; skipped otherwise). Nothing here connects anywhere.
"""

import http.server
import os
import shutil
import subprocess
import tarfile
import textwrap
import threading
import time
import tomllib
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from cluster import paths, runtime
from cluster.render import render
from facts.containerd import ContainerdState
from support import CLUSTER_FILES, cluster_copy, shipped

ARTIFACT_FILES = Path("/var/cache/kubeha-lab/artifacts/files")
CONTAINERD_ARCHIVE = "github.com/containerd/containerd/releases/download/v{v}/containerd-{v}-linux-amd64.tar.gz"


def config_of(cluster):
    return runtime.containerd_config(cluster, cluster.control_planes[0])


def test_containerd_config_is_version_3_with_systemd_cgroups_and_the_pinned_pause(any_cluster):
    loaded = any_cluster
    text = config_of(loaded)
    config = tomllib.loads(text)
    assert config["version"] == 3
    plugins = config["plugins"]
    assert set(plugins) == {"io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"}, \
        "containerd 2.x names; the 1.x io.containerd.grpc.v1.cri section would be migrated"
    images = plugins["io.containerd.cri.v1.images"]
    sandbox = f"{loaded.kubernetes.image_registry}/pause:{loaded.containerd.pause_image_tag}"
    assert images["pinned_images"]["sandbox"] == sandbox
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    runtime = plugins["io.containerd.cri.v1.runtime"]["containerd"]
    assert runtime["default_runtime_name"] == "runc"
    runc = runtime["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": True, "BinaryName": "/usr/local/sbin/runc"}
    assert config["grpc"]["address"] == "/run/containerd/containerd.sock"
    # what facts/containerd.py reads back from the host's file
    fact = ContainerdState().process(["#kubeha:version", "containerd github.com/containerd/containerd/v2 v2.2.3 x",
                                      "#kubeha:active active", "#kubeha:config", *text.splitlines()])
    assert fact["config_version"] == 3 and fact["systemd_cgroup"] is True and fact["sandbox_image"] == sandbox


def test_registry_hosts_send_every_upstream_registry_to_the_offline_mirror(any_cluster):
    loaded = any_cluster
    hosts = runtime.registry_hosts(loaded)
    if loaded.offline.registry_mirror:
        assert sorted(hosts) == sorted(["registry.k8s.io", "docker.io", "quay.io", "ghcr.io"])
    else:
        assert hosts == {}
    for registry, mirrors in hosts.items():
        text = runtime.hosts_toml(registry, mirrors)
        parsed = tomllib.loads(text)
        assert "server" not in parsed, "containerd falls back to the registry's own endpoint"
        assert list(parsed["host"]) == mirrors
        for mirror in mirrors:
            assert parsed["host"][mirror] == {"capabilities": ["pull", "resolve"]}
        assert text.startswith("# Managed by kubeha"), "facts/containerd.py finds kubeha's own files by this"


def test_registry_mirrors_come_before_the_offline_mirror(tmp_path):
    cluster, _ = cluster_copy("lab-ha", tmp_path, **{"containerd.registry_mirrors": {
        "docker.io": ["https://mirror.example:5000"], "registry.example:5000": ["http://10.123.0.1:5001"]}})
    hosts = runtime.registry_hosts(cluster)
    assert hosts["docker.io"] == ["https://mirror.example:5000", "http://10.123.0.1:5000"]
    assert hosts["registry.example:5000"] == ["http://10.123.0.1:5001"], "only upstream registries get the offline one"
    assert hosts["quay.io"] == ["http://10.123.0.1:5000"]


def test_crictl_talks_to_containerd():
    config = yaml.safe_load(render("crictl.yaml.j2", socket=paths.CONTAINERD_SOCKET))
    assert config["runtime-endpoint"] == config["image-endpoint"] == "unix:///run/containerd/containerd.sock"


def test_containerd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd", pytrace=False)
    for name in ("containerd", "modprobe"):  # systemd-analyze checks that the programs exist
        stub = tmp_path / name
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    unit = tmp_path / "containerd.service"
    unit.write_text(render("containerd.service.j2", version="2.2.3", bin_dir=str(tmp_path),
                           modprobe=str(tmp_path / "modprobe")))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    text = unit.read_text()
    for line in ("Type=notify", "Delegate=yes", "KillMode=process", f"ExecStart={tmp_path}/containerd",
                 "OOMScoreAdjust=-999"):
        assert f"\n{line}\n" in text, line
    assert "\nExecStartPre=-/sbin/modprobe overlay\n" in render("containerd.service.j2", version="2.2.3",
                                                              bin_dir="/usr/local/bin", modprobe="/sbin/modprobe")


@pytest.mark.artifacts
def test_containerd_reads_the_config(tmp_path):
    """The real containerd (from the artifact build) loads each cluster's config: `config dump`
    prints it merged with its defaults, runc with SystemdCgroup and the pinned sandbox image."""
    results = []
    for name in sorted(CLUSTER_FILES):
        cluster = shipped(name)
        archive = ARTIFACT_FILES / CONTAINERD_ARCHIVE.format(v=cluster.containerd.version)
        if not archive.is_file():
            pytest.skip(f"{archive} is not built (the lab's artifact build makes it)")
        binary = tmp_path / f"containerd-{cluster.containerd.version}"
        if not binary.exists():
            with tarfile.open(archive) as tar:
                binary.write_bytes(tar.extractfile("bin/containerd").read())
            binary.chmod(0o755)
        config = tmp_path / f"{name}.toml"
        config.write_text(config_of(cluster))
        result = subprocess.run([str(binary), "--config", str(config), "config", "dump"], capture_output=True,
                                text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        dumped = tomllib.loads(result.stdout)
        plugins = dumped["plugins"]
        runc = plugins["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
        assert runc["options"]["SystemdCgroup"] is True
        assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"].endswith(
            f"/pause:{cluster.containerd.pause_image_tag}")
        results.append(name)
    assert results


class _Registry(http.server.BaseHTTPRequestHandler):
    """Answers 404 to everything and records what was asked (and when anyone connected: a TLS
    attempt on this plain HTTP server gets no further than that)."""

    def setup(self):
        super().setup()
        self.server.connected.append(time.monotonic())

    def do_GET(self):
        self.server.requests.append((self.command, self.path))
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def _serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    server.requests, server.connected = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.artifacts
def test_containerd_pulls_through_the_mirror_then_the_registry(tmp_path):
    """The real containerd reads a hosts.toml made from our template: a pull asks the mirror
    first (the upstream repository path, ?ns=<registry>), then falls back to the registry's own
    endpoint (over https: containerd's default for a registry without a `server` line). Both
    "registries" are HTTP servers of this test on 127.0.0.1."""
    cluster = shipped("lab-ha")
    archive = ARTIFACT_FILES / CONTAINERD_ARCHIVE.format(v=cluster.containerd.version)
    if not archive.is_file():
        pytest.skip(f"{archive} is not built (the lab's artifact build makes it)")
    with tarfile.open(archive) as tar:
        for tool in ("containerd", "ctr"):
            (tmp_path / tool).write_bytes(tar.extractfile(f"bin/{tool}").read())
            (tmp_path / tool).chmod(0o755)
    mirror, registry = _serve(), _serve()
    registry_name = f"127.0.0.1:{registry.server_port}"
    hosts_dir = tmp_path / "certs.d"
    (hosts_dir / registry_name).mkdir(parents=True)
    (hosts_dir / registry_name / "hosts.toml").write_text(
        runtime.hosts_toml(registry_name, [f"http://127.0.0.1:{mirror.server_port}"]))
    socket = tmp_path / "c.sock"
    # its own root, state and sockets; no CRI, no NRI (a machine-wide socket), no /opt/containerd
    (tmp_path / "config.toml").write_text(textwrap.dedent(f"""\
        version = 3
        root = "{tmp_path}/root"
        state = "{tmp_path}/state"
        disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime",
                            "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri",
                            "io.containerd.internal.v1.opt"]
        [grpc]
          address = "{socket}"
        [ttrpc]
          address = "{socket}.ttrpc"
        """))
    log = (tmp_path / "containerd.log").open("w")
    daemon = subprocess.Popen([str(tmp_path / "containerd"), "--config", str(tmp_path / "config.toml")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if socket.exists() or daemon.poll() is not None:
                break
            time.sleep(0.1)
        assert socket.exists(), (tmp_path / "containerd.log").read_text()
        pull = subprocess.run([str(tmp_path / "ctr"), "--address", str(socket), "images", "pull",
                               "--hosts-dir", str(hosts_dir), f"{registry_name}/pause:3.10.1"],
                              capture_output=True, text=True, timeout=60)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        mirror.shutdown()
        registry.shutdown()
    output = pull.stdout + pull.stderr
    assert pull.returncode != 0, "nothing to pull: both answer 404"
    assert mirror.requests[0] == ("HEAD", f"/v2/pause/manifests/3.10.1?ns={quote(registry_name, safe='')}"), \
        mirror.requests
    assert registry.connected and registry.connected[0] > mirror.connected[0], \
        f"no fallback to the registry itself after the mirror:\n{output}"
