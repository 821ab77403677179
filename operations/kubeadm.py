"""kubeadm's cluster actions: init, bootstrap tokens, joins, and keeping what init and the joins
wrote in step with the cluster file where it changes later (the etcd members, the lifetime of
certificates).

Each reads the nodes' state when it runs (facts are read again just before an operation
executes), so a node that is already part of the cluster is never initialised or joined twice,
and the plan shown by `--dry` names exactly the actions a run would take.
"""

import shlex
import time

import gevent
from pyinfra import host, logger, state
from pyinfra.api import operation

from cluster import paths
from cluster.context import anchor_control_plane, joined_control_planes, reachable_hosts_with_role
from cluster.kubeadm import cluster_config_drift
from facts.kubernetes import ApiserverEtcdServers, BootstrapTokenIds, KubeadmClusterConfiguration, KubeNodeState
from operations.failure import fail, retry
from operations.kubectl import wait_for_the_api

API_WAIT_SECONDS = 120


def _joined(pyinfra_host=None):
    return bool(((pyinfra_host or host).get_fact(KubeNodeState) or {}).get("kubelet_conf"))


@operation()
def init(config_path):
    """`kubeadm init` on this node, unless it or any other control plane already runs the cluster."""
    name = host.data.node_name
    if _joined():
        host.noop(f"{name} is already part of the cluster")
        return
    running = joined_control_planes()
    if running:
        host.noop(f"the cluster already runs on {running[0].data.node_name}: {name} joins it instead")
        return
    # a failed init is rolled back, so the next run starts clean instead of finding half a node
    yield (f"kubeadm init --config {shlex.quote(config_path)} --skip-token-print "
           f"|| {{ kubeadm reset --force >/dev/null 2>&1; exit 1; }}")


def _waiting_to_join():
    return [h for role in ("control_plane", "worker") for h in reachable_hosts_with_role(role) if not _joined(h)]


@operation()
def bootstrap_token(cluster, token):
    """Make sure the join token exists while a node waits to join; on the anchor control plane."""
    if host != anchor_control_plane():
        host.noop("tokens are made on the anchor control plane")
        return
    if not _joined():
        host.noop("kubeadm init makes the first token")
        return
    if not _waiting_to_join():
        host.noop("no node is waiting to join")
        return
    token_id = token.split(".", 1)[0]
    tokens = host.get_fact(BootstrapTokenIds, kubeconfig=paths.ADMIN_CONF)
    # right after init the API can take a moment to answer through its endpoint
    deadline = time.monotonic() + API_WAIT_SECONDS
    while tokens is None and state.is_executing and time.monotonic() < deadline:
        gevent.sleep(3)
        tokens = host.get_fact(BootstrapTokenIds, kubeconfig=paths.ADMIN_CONF)
    if tokens is None and state.is_executing:
        yield from fail(f"the API does not answer on {cluster.control_plane_endpoint} from "
                        f"{host.data.node_name}: cannot check the bootstrap token")
        return
    if token_id in (tokens or []):
        host.noop(f"bootstrap token {token_id} is valid")
        return
    yield (f"kubeadm token create {shlex.quote(token)} --ttl 2h0m0s "
           f"--kubeconfig {paths.ADMIN_CONF} >/dev/null")


@operation()
def join(cluster, node, config_path):
    """`kubeadm join` with the pinned CA, unless this node already joined (or is initialising)."""
    if _joined():
        host.noop(f"{node.name} is already part of the cluster")
        return
    if node == cluster.first_control_plane and not joined_control_planes():
        host.noop(f"{node.name} initialises the cluster")
        return
    yield (f"kubeadm join --config {shlex.quote(config_path)} "
           f"|| {{ kubeadm reset --force >/dev/null 2>&1; exit 1; }}")


@operation()
def upload_cluster_config(cluster, node, config_path):
    """`kubeadm init phase upload-config kubeadm` from the anchor control plane when the
    ClusterConfiguration stored in the cluster differs from the cluster file in what changes after
    init (cluster.kubeadm.cluster_config_drift): control planes that join later, `kubeadm upgrade`
    and `kubeadm certs renew` read the stored one."""
    if host != anchor_control_plane():
        host.noop("the stored configuration is kept from the anchor control plane")
        return
    if not _joined():
        host.noop("kubeadm init stores the configuration")
        return
    stored = host.get_fact(KubeadmClusterConfiguration, kubeconfig=paths.ADMIN_CONF)
    if stored is None:
        host.noop(f"the stored configuration cannot be read from {node.name}: kept as it is")
        return
    drift = cluster_config_drift(cluster, stored)
    if not drift:
        host.noop("the stored kubeadm configuration is in step with the cluster file")
        return
    for field, (now, wanted) in drift.items():
        logger.info(f"{host.print_prefix}stored kubeadm configuration: {field} {now} -> {wanted}")
    yield f"kubeadm init phase upload-config kubeadm --config {shlex.quote(config_path)}"


APISERVER_WAIT_ATTEMPTS = 90  # x 2 s


@operation()
def apiserver_etcd_servers(node, endpoints):
    """This control plane's apiserver started with `endpoints` as its etcd servers (run with
    _serial=True): kubeadm writes --etcd-servers once, at init or join, so a member added or
    removed later reaches a running apiserver only here. The flag is replaced in the static pod
    manifest (written beside it and moved in, so the kubelet never reads half a file), the
    kubelet restarts the apiserver, and the next control plane waits until this one answers
    /readyz with the new flag and the API answers through its endpoint again."""
    if not endpoints:
        host.noop("stacked etcd: each apiserver uses its own member")
        return
    current = host.get_fact(ApiserverEtcdServers, manifest=paths.APISERVER_MANIFEST)
    if current is None:
        host.noop("no apiserver runs here yet: its join writes the stored etcd members")
        return
    if current == list(endpoints):
        host.noop(f"the apiserver uses the {len(endpoints)} etcd members of the cluster file")
        return
    logger.info(f"{host.print_prefix}apiserver etcd servers: {','.join(current)} -> {','.join(endpoints)}")
    servers = ",".join(endpoints)
    manifest = paths.APISERVER_MANIFEST
    # beside the manifests directory, not in it: the kubelet would run a second apiserver
    staged = f"{paths.KUBERNETES_DIR}/kube-apiserver.yaml.kubeha-new"
    yield (f"sed -E 's#--etcd-servers=[^\"[:space:]]+#--etcd-servers={servers}#' {manifest} > {staged}"
           f" && chmod 0600 {staged} && mv -f {staged} {manifest}")
    running = f"pgrep -f -- {shlex.quote(f'--etcd-servers={servers}( |$)')} >/dev/null"
    ready = f"curl -skf --max-time 3 https://127.0.0.1:{paths.APISERVER_PORT}/readyz >/dev/null"
    yield retry(f"{running} && {ready}", f"the apiserver of {node.name} did not come back with its new etcd servers",
                attempts=APISERVER_WAIT_ATTEMPTS)
    yield wait_for_the_api(f"the API does not answer through its endpoint after {node.name}'s apiserver restarted")
