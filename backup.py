"""An etcd snapshot now, copied here: `pyinfra inventory.py backup.py`

Every etcd member runs its snapshot service (installed by deploy.py's etcd backups stage) at
once; the one that is the leader takes the snapshot, exactly as the timer's runs do. The
snapshot is then fetched into the local state directory, and its name, size, revision and
sha256 are printed.
"""

from cluster import etcd
from cluster.context import cluster, node
from operations import backup as backup_ops
from operations import stage

stage.begin(name="Stage: etcd snapshot now", title="etcd snapshot now")

if etcd.runs_member(cluster(), node().roles):
    before = backup_ops.newest_snapshot_name(cluster())
    backup_ops.take_snapshot(name="Take an etcd snapshot on the leader", node=node())
    backup_ops.fetch_newest(name="Fetch the snapshot just taken into the local state", cluster=cluster(), node=node(),
                            taken_now=True, before=before)
