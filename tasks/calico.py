"""Calico, the pod network: Calico's own pinned manifest (checksum verified) adjusted to the
cluster file (pool CIDR = podSubnet, VXLAN / IP-in-IP / BGP, MTU) and applied once from the
anchor control plane; or the Tigera operator with an Installation, when calico.install says so.

Runs on the control planes. Alone: `pyinfra inventory.py tasks/calico.py`.
"""

import hashlib

from pyinfra import host

from cluster import paths
from cluster.context import cluster, has_role
from cluster.render import render
from facts.kubernetes import CalicoState
from operations import kubectl
from operations.config import config_file
from operations.download import fetch
from operations import stage

stage.begin(name="Stage: Calico", title="Calico")


def calico_present():
    state = host.get_fact(CalicoState, kubeconfig=paths.ADMIN_CONF)
    return bool(state and state.get("installed"))


if has_role("control_plane"):
    directory = f"{paths.KUBEADM_DIR}/calico"
    if cluster().calico.install == "manifest":
        manifest, manifest_sha = fetch(cluster(), "calico_manifest", dest=f"{directory}/calico.yaml")
        extra = render("calico/kustomization.yaml.j2", cluster=cluster())
        config_file(name="Write Calico's kustomization", path=f"{directory}/kustomization.yaml", content=extra)
        target, kustomize = directory, True
    else:
        manifest, manifest_sha = fetch(cluster(), "calico_operator", dest=f"{directory}/tigera-operator.yaml")
        extra = render("calico/installation.yaml.j2", cluster=cluster())
        config_file(name="Write Calico's Installation", path=f"{directory}/installation.yaml", content=extra)
        kubectl.apply(name="Install the Tigera operator", path=manifest, content_sha256=manifest_sha)
        target, kustomize = f"{directory}/installation.yaml", False
    kubectl.apply(
        name="Install Calico",
        path=target,
        content_sha256=hashlib.sha256(f"{manifest_sha}\n{extra}".encode()).hexdigest(),
        present=calico_present,
        kustomize=kustomize,
    )
