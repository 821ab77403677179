"""Reset: every machine of the cluster file (`hosts` and `remove:`) back to a prepared Linux
machine, as operations/reset.py describes: the cluster's data moved aside, kubeha's and
Kubernetes' services, files and network state removed, SSH untouched. Run by reset.py, the entry
point beside deploy.py.

Refused unless confirmed with the cluster's name: `--data reset_confirm=NAME` or
KUBEHA_RESET_CONFIRM=NAME (a --dry needs none: it only lists every deletion, host by host). The
local state directory (the CAs, the secrets) is kept, so a deploy afterwards makes a new cluster
with the same CAs; `--data reset_local_state=move` or KUBEHA_RESET_LOCAL_STATE=move moves it
aside as well (never deletes it), and the next deploy makes new ones.
"""

import os

from pyinfra import host

from cluster.context import cluster
from operations import reset as reset_ops
from operations import stage

stage.begin(name="Stage: Reset the cluster", title="Reset the cluster")

reset_ops.confirmed(name=f"Confirm the reset of {cluster().name}", cluster_name=cluster().name,
                    given=host.data.get("reset_confirm") or os.environ.get("KUBEHA_RESET_CONFIRM"))
reset_ops.reset_host(cluster())
reset_ops.local_state(name="Keep the local state, or move it aside", state_dir=str(cluster().state_dir),
                      move=(host.data.get("reset_local_state") or os.environ.get("KUBEHA_RESET_LOCAL_STATE")) == "move",
                      _run_once=True)
