"""The end-of-run checks: they change nothing, and fail the run when the cluster is not well."""

import time

import gevent
from pyinfra import host, logger, state
from pyinfra.api import operation

from cluster import certificates
from cluster.context import anchor_control_plane, pyinfra_host, reachable
from facts.api import ApiHealthz
from facts.etcd import EtcdHealth
from facts.kubernetes import CertificateExpiry, ClusterNodes
from operations.failure import fail

ADMIN = "/etc/kubernetes/admin.conf"


def _wait_for(read, is_good, timeout, interval=5):
    """Reads again until `is_good`, for at most `timeout` seconds; returns the last reading."""
    deadline = time.monotonic() + timeout
    value = read()
    while not is_good(value) and time.monotonic() < deadline:
        gevent.sleep(interval)
        value = read()
    return value


@operation()
def cluster_health(expected_nodes, etcd_endpoints, api_url, certificate_holders, timeout=300):
    """Every reachable expected node Ready, a healthy majority of external etcd members, the API
    answering on its endpoint; waits up to `timeout` seconds for them, then prints a summary, with
    the certificate each reachable host of `certificate_holders` ({node: (files, kubeconfigs)},
    cluster.certificates.held_by) sees expire first."""
    if host != anchor_control_plane():
        host.noop("checked from the anchor control plane")
        return
    if not state.is_executing:
        host.noop("the cluster is checked once the run has made its changes")
        return
    problems = []
    unreachable = [n for n in expected_nodes if pyinfra_host(n) not in state.active_hosts]
    expected_nodes = [n for n in expected_nodes if n not in unreachable]
    nodes = _wait_for(lambda: host.get_fact(ClusterNodes, kubeconfig=ADMIN),
                      lambda found: found is not None and all(found.get(n, {}).get("ready") for n in expected_nodes),
                      timeout) or {}
    not_ready = [n for n in expected_nodes if not nodes.get(n, {}).get("ready")]
    if not_ready:
        problems.append(f"nodes not Ready: {', '.join(not_ready)}")
    health = {}
    if etcd_endpoints:
        health = host.get_fact(EtcdHealth, endpoints=etcd_endpoints, cacert="/etc/kubernetes/pki/etcd/ca.crt",
                               cert="/etc/kubernetes/pki/apiserver-etcd-client.crt",
                               key="/etc/kubernetes/pki/apiserver-etcd-client.key") or {}
        healthy = sum(bool(health.get(e)) for e in etcd_endpoints)
        if healthy <= len(etcd_endpoints) // 2:
            problems.append(f"etcd has lost its majority: {healthy}/{len(etcd_endpoints)} members healthy")
    api_ok = _wait_for(lambda: host.get_fact(ApiHealthz, url=api_url), bool, 60)
    if not api_ok:
        problems.append(f"the API does not answer on {api_url}")
    logger.info("--> Cluster summary")
    logger.info(f"    nodes Ready: {len(expected_nodes) - len(not_ready)}/{len(expected_nodes)}"
                + (f" (not reachable, not checked: {', '.join(unreachable)})" if unreachable else ""))
    if etcd_endpoints:
        logger.info(f"    etcd members healthy: {sum(bool(health.get(e)) for e in etcd_endpoints)}/{len(etcd_endpoints)}")
    logger.info(f"    API on {api_url}: {'ok' if api_ok else 'NOT answering'}")
    expiring = [certificates.report(name, holder.get_fact(CertificateExpiry, paths=files, kubeconfigs=kubeconfigs))
                for name, (files, kubeconfigs) in certificate_holders.items()
                if (files or kubeconfigs) and (holder := reachable(name))]
    logger.info("    certificates, the first to expire on each host:")
    for line in filter(None, expiring):
        logger.info(f"        {line}")
    if problems:
        yield from fail("; ".join(problems))
        return
    host.noop("the cluster is healthy")
    yield from ()
