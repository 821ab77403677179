"""Control plane: the shared CAs and keys, kubeadm's configuration, `kubeadm init` on the first
control plane, then every other control plane joined one at a time with the CA pinned.

What kubeadm writes only at init and join follows the cluster file later too: the ClusterConfiguration
stored in the cluster (the external etcd members, the certificates' lifetime), before the joins
read it, and each running apiserver's etcd servers, one control plane at a time, after a member
was added or is about to be removed (tasks/remove_nodes.py removes it later in the run).

Runs on the control planes. Alone: `pyinfra inventory.py tasks/control_plane.py`.
"""

from cluster import kubeadm, paths
from cluster.context import cluster, has_role, is_first_control_plane, node, secrets
from operations import kubeadm as kubeadm_ops
from operations.config import config_file
from operations import stage
from operations.kube_vip import write_kube_vip_manifest

stage.begin(name="Stage: Control plane", title="Control plane")

if has_role("control_plane"):
    for path, (local_file, mode) in kubeadm.shared_control_plane_files(cluster(), secrets()).items():
        config_file(name=f"Install {path}", path=path,
                    content=local_file.read_bytes(), mode=mode, secret=mode == "0600")

    init_config = f"{paths.KUBEADM_DIR}/kubeadm-init.yaml"
    join_config = f"{paths.KUBEADM_DIR}/kubeadm-join.yaml"
    cluster_config = f"{paths.KUBEADM_DIR}/kubeadm-cluster.yaml"
    config_file(name="Write kubeadm's cluster configuration", path=cluster_config,
                content=kubeadm.cluster_config(cluster(), secrets()))
    if is_first_control_plane():
        config_file(name="Write kubeadm's init configuration", path=init_config,
                    content=kubeadm.init_config(cluster(), node(), secrets()), mode="0600", secret=True)
    config_file(name="Write kubeadm's join configuration", path=join_config,
                content=kubeadm.join_config(cluster(), node(), secrets()), mode="0600", secret=True)

    if is_first_control_plane():
        kubeadm_ops.init(name="kubeadm init on the first control plane", config_path=init_config)
    # init is done: kube-vip on the first control plane moves from super-admin.conf to admin.conf
    write_kube_vip_manifest(cluster(), node(), name="Point kube-vip at admin.conf after init",
                            member_by_then=is_first_control_plane())
    kubeadm_ops.upload_cluster_config(name="Keep the cluster's stored kubeadm configuration in step with the file",
                                      cluster=cluster(), node=node(), config_path=cluster_config)
    kubeadm_ops.bootstrap_token(name="Make sure a bootstrap token exists for the joins",
                                cluster=cluster(), token=secrets().bootstrap_token)
    kubeadm_ops.join(name="kubeadm join as a control plane, one at a time", cluster=cluster(), node=node(),
                     config_path=join_config, _serial=True)
    # joined control planes take their share of the VIP (a join needs empty manifests first)
    write_kube_vip_manifest(cluster(), node(), name="Write the kube-vip static pod after the joins",
                            member_by_then=True)
    kubeadm_ops.apiserver_etcd_servers(name="Point each apiserver at the etcd members of the file, one at a time",
                                       node=node(), endpoints=kubeadm.etcd_endpoints(cluster()), _serial=True)
