"""External etcd: the pinned release, its own PKI, a systemd unit, and the membership.

Runs on the hosts with the etcd role when etcd.topology is external (with stacked etcd, kubeadm
runs etcd and this stage does nothing). Alone: `pyinfra inventory.py tasks/etcd.py`.

The files are decided while planning (cluster/etcd.py): the release archive, the certificates
of the cluster's local state (cluster/secrets.py), and the unit rendered from
templates/etcd.service.j2. The membership is decided when its operations run
(operations/etcd.py): a new cluster starts with every member at once; a member missing from a
running cluster is added through a healthy member, one at a time; a replaced machine (listed, data dir gone) is removed and added again;
a member whose unit or certificates changed is restarted one at a time, only while the others
keep a quorum, waiting until it is healthy before the next. A member whose host cannot be
reached is left out and reported; the others go on.
"""

from pyinfra import host
from pyinfra.operations import files, server, systemd

from cluster import etcd as etcd_plan
from cluster.context import cluster, has_role, hosts_with_role, node, secrets
from operations import etcd as etcd_ops, etcd_tools, stage
from operations.config import config_file

stage.begin(name="Stage: etcd", title="etcd")

TOOLS = ("etcd", "etcdctl", "etcdutl")


if cluster().etcd.topology == "external" and has_role("etcd"):
    etcd = etcd_plan.from_cluster(
        cluster(), {n.name: h.name for n, h in zip(cluster().etcd_hosts, hosts_with_role("etcd"))})
    me = etcd.member(node().name)
    etcd_tools.install(cluster(), TOOLS)

    server.group(name="Group etcd", group="etcd", system=True)
    server.user(name="User etcd", user="etcd", group="etcd", system=True, home=etcd.data_dir,
                ensure_home=False, shell="/usr/sbin/nologin")
    files.directory(name="etcd data dir", path=etcd.data_dir, user="etcd", group="etcd", mode="0700")
    files.directory(name="etcd PKI dir", path=etcd.pki_dir, user="etcd", group="etcd", mode="0700")

    pki = etcd_plan.pki_files(secrets(), node())
    for file_name in host.loop(sorted(pki)):
        local_path, is_secret = pki[file_name]
        config_file(
            name=f"etcd PKI: {file_name}",
            path=f"{etcd.pki_dir}/{file_name}",
            content=local_path.read_bytes(),
            mode="0600" if is_secret else "0644",
            secret=is_secret,
        )
    # etcd reads its own certificates and keys; the admin client's stay root's
    etcd_ops.owned(
        name="etcd owns its certificates",
        paths=[f"{etcd.pki_dir}/{f}" for f in etcd_plan.etcd_owned(pki)],
        user="etcd", group="etcd",
    )

    unit_content = etcd_plan.unit(etcd, me.name)
    config_file(
        name="Write the etcd unit",
        path="/etc/systemd/system/etcd.service",
        content=unit_content,
        daemon_reload=True,
        action="none",  # restarts are quorum-safe, one member at a time: restart_changed below
    )
    # what the running etcd must have been started with; a difference means a restart
    applied = etcd_plan.applied_for(unit_content, pki)
    # enabled only: the membership operations below decide when it first starts
    systemd.service(name="Enable etcd", service="etcd", running=None, enabled=True)

    # membership, decided from what the members say when each operation runs
    etcd_ops.decide_bootstrap(name="etcd: decide whether the cluster is new", etcd=etcd, member=me.name)
    etcd_ops.start(name="etcd: start the members that can start on their own", etcd=etcd,
                   member=me.name, applied=applied)
    etcd_ops.join(name="etcd: add a missing member through a healthy one", etcd=etcd,
                  member=me.name, applied=applied, _serial=True)
    etcd_ops.restart_changed(name="etcd: restart a changed member, keeping the quorum", etcd=etcd,
                             member=me.name, applied=applied, _serial=True)
