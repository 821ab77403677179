"""kube-vip's static pod on a control plane: its manifest, and which kubeconfig it mounts in
each state of the node (the decision operations/kube_vip.py takes when it runs)."""

from cluster import paths
from cluster.render import render
from cluster.versions import release_tag

MANIFEST = f"{paths.MANIFESTS_DIR}/kube-vip.yaml"


def manifest(cluster, node, kubeconfig):
    """The static pod manifest for `node`, mounting `kubeconfig` from the host."""
    return render("kube-vip.yaml.j2", cluster=cluster, node=node, kubeconfig=kubeconfig,
                  image=f"{cluster.kube_vip.image}:{release_tag(cluster.kube_vip.version)}")


def kubeconfig_for(node_state, first_control_plane):
    """Which kubeconfig kube-vip uses on a node in `node_state` (KubeNodeState); None while it
    must have no manifest at all."""
    if node_state["role"] is not None:
        return paths.ADMIN_CONF
    if first_control_plane:
        return paths.SUPER_ADMIN_CONF
    return None
