"""Workers: kubeadm join with the CA pinned, through the API endpoint (their localhost proxy or
the VIP). Workers join together; the control planes joined one at a time before them.

Runs on the workers. Alone: `pyinfra inventory.py tasks/workers.py`.
"""

from cluster import kubeadm, paths
from cluster.context import cluster, has_role, node, secrets
from operations import kubeadm as kubeadm_ops
from operations import stage
from operations.config import config_file

stage.begin(name="Stage: Workers", title="Workers")

if has_role("worker"):
    join_config = f"{paths.KUBEADM_DIR}/kubeadm-join.yaml"
    config_file(name="Write kubeadm's join configuration", path=join_config,
                content=kubeadm.join_config(cluster(), node(), secrets()), mode="0600", secret=True)
    kubeadm_ops.join(name="kubeadm join as a worker", cluster=cluster(), node=node(), config_path=join_config)
