"""Kubernetes binaries: kubeadm, kubelet and kubectl at the pinned version, checksum verified,
and the kubelet service that kubeadm drives.

Runs on control planes and workers. Alone: `pyinfra inventory.py tasks/binaries.py`.
"""

from pyinfra import host
from pyinfra.operations import systemd

from cluster.context import has_role
from cluster.render import render
from operations.config import config_file
from operations.download import fetch
from operations.host import selinux_relabel
from operations import stage

stage.begin(name="Stage: Kubernetes binaries", title="Kubernetes binaries")

if has_role("control_plane") or has_role("worker"):
    fetch("kubeadm", dest=f"{host.data.bin_dir}/kubeadm", mode="0755")
    fetch("kubelet", dest=f"{host.data.bin_dir}/kubelet", mode="0755")
    fetch("kubectl", dest=f"{host.data.bin_dir}/kubectl", mode="0755")
    selinux_relabel(name="Label the Kubernetes binaries for SELinux", paths=[host.data.bin_dir])
    config_file(
        name="Write the kubelet unit",
        path="/etc/systemd/system/kubelet.service",
        content=render("kubelet.service.j2", bin_dir=host.data.bin_dir),
        daemon_reload=True,
        service="kubelet",
    )
    config_file(
        name="Write kubeadm's kubelet drop-in",
        path="/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        content=render("10-kubeadm.conf.j2", bin_dir=host.data.bin_dir),
        daemon_reload=True,
        service="kubelet",
    )
    # enabled only: kubelet starts for real once kubeadm init/join has given it a configuration
    systemd.service(name="Enable the kubelet", service="kubelet", running=None, enabled=True)
