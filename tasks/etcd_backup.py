"""etcd snapshots: a timer on every etcd member fires on the same schedule and the member that is
the leader then takes the snapshot (templates/kubeha-etcd-backup.sh.j2), so each period gets
one snapshot whichever members are up; every deploy copies the newest into the local state.

Runs on the hosts that run an etcd member: the etcd hosts (external etcd) or the control planes
(stacked etcd; they get etcdctl and etcdutl from the pinned etcd release, as the external
members have them from the etcd stage). Alone: `pyinfra inventory.py tasks/etcd_backup.py`.
A snapshot now: backup.py; a restore: restore.py.
"""

from pyinfra.operations import files, systemd

from cluster import backup, etcd, paths
from cluster.context import cluster, node
from operations import etcd_tools, stage
from operations.backup import fetch_newest
from operations.config import config_file

stage.begin(name="Stage: etcd backups", title="etcd backups")

if etcd.runs_member(cluster(), node().roles):
    me = backup.member(cluster(), node().name)
    layout = etcd.layout(cluster())
    if layout.topology == "stacked":
        etcd_tools.install(cluster(), ("etcdctl", "etcdutl"))

    files.directory(name="etcd snapshot directory", path=backup.SNAPSHOT_DIR, user="root", group="root",
                    mode="0700")
    config_file(name="Write the etcd snapshot script", path=backup.SCRIPT,
                content=backup.snapshot_script(cluster(), me, layout, paths.BIN_DIR), mode="0700")
    units = backup.snapshot_units(cluster(), me)
    config_file(name="Write the etcd snapshot service", path=f"{backup.UNIT_DIR}/{backup.SERVICE}",
                content=units[backup.SERVICE], daemon_reload=True,
                action="none")  # a oneshot: its next run uses the new file
    config_file(name="Write the etcd snapshot timer", path=f"{backup.UNIT_DIR}/{backup.TIMER}",
                content=units[backup.TIMER], daemon_reload=True, service=backup.TIMER)
    systemd.service(name="Enable the etcd snapshot timer", service=backup.TIMER, running=True, enabled=True)
    if cluster().backup.fetch:
        fetch_newest(name="Fetch the newest etcd snapshot into the local state", cluster=cluster(), node=node())
