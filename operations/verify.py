"""The end-of-run checks: they change nothing, print the cluster report, and fail the run when
the cluster is not well."""

import time

import gevent
from pyinfra import host, logger, state
from pyinfra.api import operation

from cluster import certificates, etcd, paths, report
from cluster.context import anchor_control_plane, pyinfra_host
from facts.api import ApiHealthz
from facts.etcd import EtcdMemberStatus, EtcdVersion
from facts.kubernetes import CertificateExpiry, ClusterNodes, KubeBinaryVersions
from facts.loadbalancer import HaproxyBackendsUp, VipHolder
from operations.failure import fail

# the apiserver's client certificate for etcd: kubeha's (external) or kubeadm's (stacked)
ETCD_CLIENT = {"cacert": f"{paths.KUBEADM_ETCD_PKI_DIR}/ca.crt", "cert": f"{paths.PKI_DIR}/apiserver-etcd-client.crt",
               "key": f"{paths.PKI_DIR}/apiserver-etcd-client.key"}


def _wait_for(read, is_good, timeout, interval=5):
    """Reads again until `is_good`, for at most `timeout` seconds; returns the last reading."""
    deadline = time.monotonic() + timeout
    value = read()
    while not is_good(value) and time.monotonic() < deadline:
        gevent.sleep(interval)
        value = read()
    return value


def _on_each(nodes, read):
    """{node name: read(node, its pyinfra host)} for the nodes this run reaches; a node whose
    facts cannot be read is left out (the report names it as not checked)."""
    found = {}
    for node in nodes:
        other = pyinfra_host(node.name)
        if other not in state.active_hosts:
            continue
        try:
            found[node.name] = read(node, other)
        except Exception as error:  # noqa: BLE001 - a host lost during the run is "not checked"
            logger.debug("cannot read %s for the report: %s", node.name, error)
    return found


def _certificate_expiry(cluster, node, pyinfra_host):
    """When each certificate `node` holds expires (cluster/certificates.py: held_by)."""
    files, kubeconfigs = certificates.held_by(cluster, node)
    return pyinfra_host.get_fact(CertificateExpiry, paths=files, kubeconfigs=kubeconfigs)


def _readings(cluster, timeout):
    """The facts the report is made of, read now (waiting up to `timeout` s for the nodes)."""
    kubelet_nodes = [n for n in cluster.hosts if {"control_plane", "worker"} & set(n.roles)]
    expected = [n.name for n in kubelet_nodes]
    unreachable = [n for n in expected if pyinfra_host(n) not in state.active_hosts]
    waiting_for = [n for n in expected if n not in unreachable]
    nodes = _wait_for(lambda: host.get_fact(ClusterNodes, kubeconfig=paths.ADMIN_CONF),
                      lambda found: found is not None and all(found.get(n, {}).get("ready") for n in waiting_for),
                      timeout)
    members = etcd.member_nodes(cluster)
    status = host.get_fact(EtcdMemberStatus, endpoints=[report.etcd_endpoint(m) for m in members], **ETCD_CLIENT)
    api_url = f"https://{cluster.api_address}:{cluster.api.port}"
    external = cluster.etcd.topology == "external"
    return {
        "expected_nodes": expected,
        "unreachable": unreachable,
        "nodes": nodes,
        "versions": _on_each(kubelet_nodes, lambda _, h: h.get_fact(KubeBinaryVersions, bin_dir=paths.BIN_DIR)),
        "etcd": {m.name: status.get(report.etcd_endpoint(m), {}) for m in members},
        "etcd_installed": _on_each(members if external else [],
                                   lambda _, h: h.get_fact(EtcdVersion, binary=f"{paths.BIN_DIR}/etcd")),
        "vip": _on_each(report.vip_candidates(cluster), lambda _, h: h.get_fact(VipHolder, vip=cluster.api.vip)),
        "haproxy": _on_each(cluster.lb_hosts if cluster.api.mode == "keepalived_haproxy" else [], lambda n, h: h.get_fact(
            HaproxyBackendsUp, url=f"http://{n.address}:{paths.HAPROXY_STATS_PORT}/stats")),
        "certificates": _on_each([n for n in cluster.hosts if any(certificates.held_by(cluster, n))],
                                 lambda n, h: _certificate_expiry(cluster, n, h)),
        "api_url": api_url,
        "api_ok": _wait_for(lambda: host.get_fact(ApiHealthz, url=api_url), bool, 60),
    }


@operation()
def cluster_health(cluster, timeout=300):
    """Every reachable node Ready, a healthy majority of etcd members, the API answering on its
    endpoint; waits up to `timeout` seconds for the nodes, then prints the cluster report: also
    who holds the VIP, haproxy's view of the apiservers, each node's kubelet and kubeadm, each
    etcd member's version, the certificates that expire first, and how to reach the cluster."""
    if host != anchor_control_plane():
        host.noop("checked from the anchor control plane")
        return
    if not state.is_executing:
        host.noop("the cluster is checked once the run has made its changes")
        return
    lines, problems = report.summary(cluster, _readings(cluster, timeout))
    logger.info("--> Cluster summary")
    for line in lines:
        logger.info(f"    {line}")
    if problems:
        yield from fail("; ".join(problems))
        return
    host.noop("the cluster is healthy")
    yield from ()
