"""Kubernetes binaries: kubeadm, kubelet and kubectl at the pinned version, checksum verified,
and the kubelet service that kubeadm drives.

Runs on control planes and workers. Alone: `pyinfra inventory.py tasks/binaries.py`.
"""

from pyinfra.operations import systemd

from cluster import paths
from cluster.context import cluster, has_role
from cluster.render import render
from operations.config import config_file
from operations.download import fetch
from operations import stage
from operations.host import selinux_relabel

stage.begin(name="Stage: Kubernetes binaries", title="Kubernetes binaries")

if has_role("control_plane") or has_role("worker"):
    fetch(cluster(), "kubeadm", dest=f"{paths.BIN_DIR}/kubeadm", mode="0755")
    fetch(cluster(), "kubelet", dest=f"{paths.BIN_DIR}/kubelet", mode="0755")
    fetch(cluster(), "kubectl", dest=f"{paths.BIN_DIR}/kubectl", mode="0755")
    selinux_relabel(name="Label the Kubernetes binaries for SELinux", paths=[paths.BIN_DIR])
    config_file(
        name="Write the kubelet unit",
        path="/etc/systemd/system/kubelet.service",
        content=render("kubelet.service.j2", bin_dir=paths.BIN_DIR),
        daemon_reload=True,
        service="kubelet",
    )
    config_file(
        name="Write kubeadm's kubelet drop-in",
        path="/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        content=render("10-kubeadm.conf.j2", bin_dir=paths.BIN_DIR),
        daemon_reload=True,
        service="kubelet",
    )
    # enabled only: kubelet starts for real once kubeadm init/join has given it a configuration
    systemd.service(name="Enable the kubelet", service="kubelet", running=None, enabled=True)
