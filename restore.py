"""Restore etcd from a snapshot, on every member, and bring Kubernetes back onto it:

    KUBEHA_RESTORE_SNAPSHOT=NAME pyinfra inventory.py restore.py [--dry]

NAME is a snapshot in the local state directory or on a member (backup.py and every deploy
fetch the newest). Refused, before anything is touched, without a name; for a snapshot that
is missing, truncated or corrupt (its sha256 and etcdutl snapshot status against its
metadata), or of another cluster; and while etcd is healthy, unless KUBEHA_RESTORE_CONFIRM=yes.

The steps (cluster/backup.py RestorePlan): the snapshot on every member and checked there,
every apiserver stopped, etcd stopped, every member restored from the same snapshot into a new
data dir with a new cluster token and --bump-revision/--mark-compacted (the old data moved
aside, kept), etcd started, the apiservers started, controller-managers, schedulers and
kubelets restarted, then the cluster checked as deploy.py's last stage checks it. Each step
decides from the hosts' state, so a run that was interrupted is finished by running this again.
"""

from pyinfra import local

from cluster.context import cluster, node
from operations import backup as restore
from operations import stage

stage.begin(name="Stage: etcd restore", title="etcd restore")

plan, holder = restore.restore_plan(cluster())
restore.stop_after_any_failure()  # a step (named "Restore: ...") that fails on one host ends the run
step = {"cluster": cluster(), "node": node(), "plan": plan}  # what every step is given
if holder:
    restore.fetch_for_restore(name="Restore: fetch the snapshot from the member that has it", holder=holder, **step)
restore.upload_snapshot(name="Restore: the snapshot on every member", **step)
restore.check_snapshot(name="Restore: check every member's copy", **step)
restore.begin(name="Restore: record the restore on every host", **step)
restore.stop_static_pods(name="Restore: stop every apiserver (and stacked etcd)", **step)
restore.stop_etcd(name="Restore: stop etcd", **step)
restore.restore_member(name="Restore: restore every member into a new data dir", **step)
restore.start_etcd(name="Restore: start etcd on every member", **step)
restore.start_apiserver(name="Restore: start every apiserver", **step)
restore.restart_components(name="Restore: restart controller-managers, schedulers and kubelets", **step)
restore.finish(name="Restore: done", **step)

local.include("tasks/verify.py")  # nodes Ready, etcd healthy, the API answering on its endpoint; the cluster report
