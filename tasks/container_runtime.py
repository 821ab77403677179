"""Container runtime: containerd, runc, the CNI plugins and crictl at their pinned versions,
checksum verified, and containerd's configuration.

Runs on control planes and workers. Alone: `pyinfra inventory.py tasks/container_runtime.py`.

- containerd's release archive is unpacked into /opt/kubeha/containerd-<version> and its
  binaries linked into /usr/local/bin; containerd.service is upstream's unit, written by us.
  After an upgrade moved the links, a containerd still running the old binary is restarted
  (its containers keep running).
- runc goes to /usr/local/sbin/runc, the CNI plugins into /opt/cni/bin, crictl into
  /opt/kubeha/crictl-<version> (linked into /usr/local/bin) with /etc/crictl.yaml.
- /etc/containerd/config.toml (config version 3, containerd 2.x): runc with SystemdCgroup, the
  sandbox image <kubernetes.image_registry>/pause:<containerd.pause_image_tag>, registry hosts
  read from /etc/containerd/certs.d. containerd restarts only when the file or its unit changed.
- certs.d/<registry>/hosts.toml for each registry of containerd.registry_mirrors and, with
  offline.registry_mirror, for registry.k8s.io, docker.io, quay.io and ghcr.io; read at each
  pull, so no restart. Files kubeha wrote for registries no longer configured are removed.
- Under SELinux (RHEL), the installed files get their policy's labels; SELinux stays enforcing.
"""

from pyinfra import host
from pyinfra.operations import files, systemd

from cluster import paths, runtime
from cluster.context import arch, cluster, has_role, node, os_family
from cluster.render import render
from operations import stage
from operations.archive import unpack
from operations.config import config_file
from operations.containerd import remove_stale_registry_hosts
from operations.download import fetch
from operations.host import selinux_relabel
from operations.services import restart_if_running_another

stage.begin(name="Stage: Container runtime", title="Container runtime")

CONTAINERD_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr")
CNI_DIR = "/opt/cni/bin"
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")  # checked after unpacking


if (has_role("control_plane") or has_role("worker")) and os_family() and arch():
    versions = cluster().containerd
    bin_dir = paths.BIN_DIR
    containerd_dir = f"{paths.RELEASES_DIR}/containerd-{versions.version}"
    crictl_dir = f"{paths.RELEASES_DIR}/crictl-{versions.crictl_version}"

    archive, archive_sha256 = fetch(cluster(), "containerd")
    unpack(name=f"Unpack containerd {versions.version}", archive=archive, archive_sha256=archive_sha256,
           dest=containerd_dir, targets=[f"bin/{tool}" for tool in CONTAINERD_TOOLS])
    for tool in host.loop(CONTAINERD_TOOLS):
        files.link(name=f"Link {tool} {versions.version}", path=f"{bin_dir}/{tool}",
                   target=f"{containerd_dir}/bin/{tool}")

    fetch(cluster(), "runc", dest=paths.RUNC, mode="0755")

    archive, archive_sha256 = fetch(cluster(), "cni_plugins")
    files.directory(name="CNI plugins directory", path=CNI_DIR, mode="0755")
    unpack(name=f"Unpack the CNI plugins {versions.cni_plugins_version}", archive=archive,
           archive_sha256=archive_sha256, dest=CNI_DIR, targets=CNI_PLUGINS)

    archive, archive_sha256 = fetch(cluster(), "crictl")
    unpack(name=f"Unpack crictl {versions.crictl_version}", archive=archive, archive_sha256=archive_sha256,
           dest=crictl_dir, targets=["crictl"])
    files.link(name=f"Link crictl {versions.crictl_version}", path=f"{bin_dir}/crictl", target=f"{crictl_dir}/crictl")
    config_file(name="Point crictl at containerd", path="/etc/crictl.yaml",
                content=render("crictl.yaml.j2", socket=paths.CONTAINERD_SOCKET))

    selinux_relabel(name="Label the runtime's files for SELinux",
                    paths=[bin_dir, paths.SBIN_DIR, paths.RELEASES_DIR, CNI_DIR])

    mirrors = runtime.registry_hosts(cluster())
    for registry in host.loop(sorted(mirrors)):
        config_file(name=f"Registry mirrors of {registry}", path=f"{paths.CONTAINERD_CERTS_DIR}/{registry}/hosts.toml",
                    content=runtime.hosts_toml(registry, mirrors[registry]))
    remove_stale_registry_hosts(name="Remove registry mirrors no longer configured",
                                certs_dir=paths.CONTAINERD_CERTS_DIR, wanted=sorted(mirrors))

    config_file(name="Write containerd's unit", path="/etc/systemd/system/containerd.service",
                content=render("containerd.service.j2", version=versions.version, bin_dir=bin_dir,
                               modprobe="/sbin/modprobe"),
                daemon_reload=True, service="containerd")
    config_file(name="Write containerd's configuration", path="/etc/containerd/config.toml",
                content=runtime.containerd_config(cluster(), node()), service="containerd")
    restart_if_running_another(name="Restart a containerd still running an older release",
                               service="containerd", binary=f"{containerd_dir}/bin/containerd")
    systemd.service(name="Run containerd", service="containerd", running=True, enabled=True)
