"""The kubectl user (kubectl_user.name, e.g. citec): a Linux user on every control plane with its
own client certificate made by kubeadm (again once it expires within certificates.renew_before
days), a kubeconfig pointing at the API's VIP, and only the rights of the ClusterRole bound to
its group. A copy of the kubeconfig is kept in the local state directory, for kubectl from this
machine.

Runs on the control planes. Alone: `pyinfra inventory.py tasks/kubectl_user.py`.
"""

import hashlib

from pyinfra import host
from pyinfra.operations import server

from cluster import paths
from cluster.certificates import user_kubeconfig
from cluster.context import anchor_control_plane, cluster, has_role, secrets
from cluster.render import render
from facts.kubernetes import ClusterRoleBinding
from operations import kubectl
from operations.config import config_file
from operations.users import keep_private_copy, kubeadm_user_kubeconfig
from operations import stage

stage.begin(name="Stage: kubectl user", title="kubectl user")

user = cluster().kubectl_user
binding = f"kubeha:{user.name}"


def binding_present():
    current = host.get_fact(ClusterRoleBinding, binding=binding, kubeconfig=paths.ADMIN_CONF)
    return bool(current) and current["role"] == user.cluster_role


if has_role("control_plane"):
    server.user(name="Create the kubectl user", user=user.name, shell="/bin/bash", create_home=True)
    user_config = f"{paths.KUBEADM_DIR}/kubeadm-user.yaml"
    config_file(name="Write the kubectl user's kubeadm configuration", path=user_config,
                content=render("kubeadm-user.yaml.j2", cluster=cluster(),
                               server=f"{cluster().api_address}:{cluster().api.port}"))
    kubeconfig = user_kubeconfig(cluster())
    kubeadm_user_kubeconfig(name="Make the kubectl user's certificate and kubeconfig, again when due", user=user.name,
                            group=user.group, config_path=user_config, kubeconfig=kubeconfig,
                            renew_before_days=cluster().certificates.renew_before,
                            validity_hours=cluster().certificates.validity_hours)

    rbac = render("kubectl-user-rbac.yaml.j2", user=user, binding=binding)
    rbac_path = f"{paths.KUBEADM_DIR}/kubectl-user-rbac.yaml"
    config_file(name="Write the kubectl user's role binding", path=rbac_path, content=rbac)
    kubectl.apply(name="Bind the kubectl user's group to its role", path=rbac_path,
                  content_sha256=hashlib.sha256(rbac.encode()).hexdigest(), present=binding_present)

    if host == anchor_control_plane():
        keep_private_copy(name="Keep a copy of the kubectl user's kubeconfig locally", src=kubeconfig,
                          dest=str(secrets().user_kubeconfig))
