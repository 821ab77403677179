"""kube-vip as a static pod on a control plane, written when the node's state allows it.

What goes into the manifest is decided when the operation runs, from the node's kubeadm files
(facts.kubernetes.KubeNodeState read just before), so a stage can call it before `kubeadm init`,
again after the joins, and on every later run without changing anything that is already right:

- the first control plane before `kubeadm init`: kube-vip must hold the VIP while init runs,
  and it must use /etc/kubernetes/super-admin.conf, because since kubeadm 1.29 admin.conf gets
  its rights only at the end of init (kube-vip #684);
- a control plane that has joined (init done, or `kubeadm join` done): admin.conf, so the
  first control plane switches from super-admin.conf on the next call;
- any other control plane that has not joined yet: nothing, because `kubeadm join` refuses a
  non-empty /etc/kubernetes/manifests (preflight DirAvailable--etc-kubernetes-manifests).
"""

from pyinfra import host, state
from pyinfra.api import operation

from cluster.context import has_role
from cluster.kube_vip import MANIFEST, kubeconfig_for, manifest
from facts.kubernetes import KubeNodeState
from operations.config import config_file


@operation()
def kube_vip_manifest(cluster, node, member_by_then=False):
    """Make /etc/kubernetes/manifests/kube-vip.yaml right for this control plane's state now.

    Decided when it runs (see the module's docstring); the kubelet picks a changed manifest up
    by itself. `member_by_then`: the run's earlier operations (init, the joins) make this
    control plane a member before this point; a --dry, which runs none of them, plans with that.
    """
    node_state = host.get_fact(KubeNodeState)
    if member_by_then and not state.is_executing and node_state["role"] is None:
        node_state = {**node_state, "role": "control_plane"}
    kubeconfig = kubeconfig_for(node_state, node == cluster.first_control_plane)
    if kubeconfig is None:
        host.noop("kube-vip waits until this control plane has joined (kubeadm join needs an "
                  "empty manifests directory)")
        return
    yield from config_file._inner(path=MANIFEST, content=manifest(cluster, node, kubeconfig), mode="0600")


def write_kube_vip_manifest(cluster, node, name="Write the kube-vip static pod", member_by_then=False):
    """The kube-vip manifest on this host if it is a control plane and kube-vip holds the VIP.

    For other stages: call it once after the operation that runs `kubeadm init` and once after
    the joins (not in a Python loop over hosts), saying whether this host is a member by then;
    each control plane then gets the manifest that fits its state at that moment, and a call
    with nothing to change is a no-op.
    """
    if cluster.api.mode == "kube_vip" and has_role("control_plane"):
        kube_vip_manifest(name=name, cluster=cluster, node=node, member_by_then=member_by_then)
