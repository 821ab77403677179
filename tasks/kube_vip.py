"""kube-vip: the API's virtual IP held by one control plane, chosen by leader election, as a
static pod on every control plane.

Runs on the control planes when api.mode is kube_vip. Alone: `pyinfra inventory.py
tasks/kube_vip.py`.

The stage comes before `kubeadm init`, so the first control plane holds the VIP while init runs
(with super-admin.conf until init is done). A control plane that has not joined yet gets no
manifest here: `kubeadm join` needs an empty manifests directory, so the control_plane stage
calls operations.kube_vip.write_kube_vip_manifest() again after the joins; that call also
switches the first control plane to admin.conf. Which of these applies is read from the node
when the operation runs (see operations/kube_vip.py), so a second run changes nothing.
"""

from cluster.context import cluster, node
from operations import stage
from operations.kube_vip import write_kube_vip_manifest

stage.begin(name="Stage: kube-vip", title="kube-vip")

write_kube_vip_manifest(cluster(), node())
