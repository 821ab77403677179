"""Removing nodes: the machines of the cluster file's `remove:` list taken out of the cluster,
then reset. Runs when that list is not empty. Alone: `pyinfra inventory.py tasks/remove_nodes.py`.

Before any host is touched (while the run is planned), each entry is matched to its node and etcd
member by both its name and its address, and the removal is refused as a whole if one does not
fit or etcd would lose its quorum (operations/removal.py, cluster/removal.py).

This stage comes after the ones that no longer list the machines: by then haproxy on the lb hosts
and the workers' API proxies have dropped a removed control plane, and the apiservers no longer
use a removed etcd member (tasks/control_plane.py); members added by the same run have joined.
Then, in order:
- the nodes drained, from the anchor control plane (a machine that cannot be reached is not);
- under kube-vip, a removed control plane's kube-vip stopped until the VIP has moved;
- their etcd members removed, quorum-safe (external etcd: from a member; stacked: through the
  anchor's etcd pod, since `kubeadm reset` runs without its etcd phase);
- each reachable machine reset (operations/reset.py); one that cannot be reached is skipped, and
  pyinfra reports it as failed;
- their nodes deleted.
"""

from cluster.context import being_removed, cluster, node
from operations import removal as removal_ops
from operations import stage
from operations.reset import reset_host

stage.begin(name="Stage: Remove nodes", title="Remove nodes")

# Every operation is planned on every host, and acts where it applies: pyinfra orders operations
# only within each host's sequence, and a node is deleted only after its machine is reset.
entries = cluster().removals
if entries:
    removal_ops.removal_plan(cluster())  # refuses the whole run, before anything changes, if the removal is unsafe
    removal_ops.drain(name="Drain the nodes being removed", node=node(), entries=entries)
    removal_ops.hand_over_vip(name="Hand the API's VIP over to another control plane", cluster=cluster(), node=node(),
                              act=being_removed() and cluster().api.mode == "kube_vip")
    removal_ops.remove_etcd_members(name="Remove their etcd members, keeping the quorum", cluster=cluster(),
                                    node=node(), entries=entries)
    reset_host(cluster(), act=being_removed())
    removal_ops.delete_nodes(name="Delete the nodes removed", node=node(), entries=entries)
