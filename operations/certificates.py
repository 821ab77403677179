"""Renewing kubeadm's certificates on a control plane, and restarting the static pods that read
them (tasks/certificates.py). What is due is decided by cluster/certificates.py from what the host
holds when the operation runs; external etcd's certificates are re-issued by the local CA
(cluster/secrets.py) and restarted by the etcd stage, the kubectl user's by operations/users.py.
"""

import shlex

from pyinfra import host, logger, state
from pyinfra.api import operation
from pyinfra.facts.files import Sha256File

from cluster import certificates, paths
from facts.kubernetes import CertificateExpiry, StaticPodStarts
from operations.failure import retry
from operations.kubectl import wait_for_the_api

# where each static pod answers once it serves again (kubeadm binds the controller-manager's
# and the scheduler's to 127.0.0.1 and lets anyone read their health; etcd's metrics listener
# is plain HTTP on 127.0.0.1)
HEALTH = {
    "etcd": f"http://127.0.0.1:{paths.ETCD_METRICS_PORT}/health",
    "kube-apiserver": f"https://127.0.0.1:{paths.APISERVER_PORT}/readyz",
    "kube-controller-manager": f"https://127.0.0.1:{paths.CONTROLLER_MANAGER_PORT}/healthz",
    "kube-scheduler": f"https://127.0.0.1:{paths.SCHEDULER_PORT}/healthz",
}
STOP_SECONDS = 30  # a component's graceful stop (etcd hands its leadership over)
WAIT_ATTEMPTS = 90  # x 2 s for the component to serve again


def restart(node, component):
    """Stop the component's container; the kubelet starts a new one, with the current files. The
    command waits until a new container runs and answers its health check."""
    select = f"crictl ps -q --state running --label io.kubernetes.pod.namespace=kube-system --name '^{component}$'"
    serving = (f"new=$({select}) && [ -n \"$new\" ] && [ \"$new\" != \"$old\" ] && "
               f"curl -skf --max-time 3 {HEALTH[component]} >/dev/null")
    return (f"old=$({select}); if [ -n \"$old\" ]; then crictl stop --timeout {STOP_SECONDS} $old >/dev/null; fi; "
            + retry(serving, f"{component} on {node.name} did not serve again", attempts=WAIT_ATTEMPTS))


@operation()
def renew_and_restart(cluster, node, renew_before_days, config_path, issued):
    """On a control plane (run with _serial=True, so one control plane at a time):
    - when one of the certificates `kubeadm certs renew all` renews expires within
      `renew_before_days`: renew them all (the lifetime from `config_path`, the cluster file's
      ClusterConfiguration), then restart every static pod that reads them, each serving again
      before the next, and the API answering through its endpoint before the next control plane;
    - else restart the static pods running since before one of their files changed: a renewal
      interrupted before its restarts, or a file kubeha issues (`issued`: {path: sha256 of what
      this run writes}, the apiserver's external etcd client certificate), which a --dry counts as
      changed when the host's differs.
    """
    files, kubeconfigs = certificates.renewed_by_kubeadm(cluster)
    expiry = host.get_fact(CertificateExpiry, paths=files, kubeconfigs=kubeconfigs)
    if not expiry:
        host.noop("no certificate of kubeadm's here yet: kubeadm init or join makes them")
        return
    components = certificates.read_by_component(cluster)
    due = certificates.due(expiry, files + kubeconfigs, renew_before_days)
    if due:
        first = min(due.items(), key=lambda item: item[1])
        logger.info(f"{host.print_prefix}renew kubeadm's certificates: {len(due)} expire within {renew_before_days} "
                    f"days, {first[0]} first, {certificates.describe(first)}")
        stale = list(components)
    else:
        starts = host.get_fact(StaticPodStarts, paths=sorted({p for paths in components.values() for p in paths}))
        modified = dict(starts["modified"])
        if not state.is_executing:  # a --dry: the files this run issues are not on the host yet
            for path, sha256 in issued.items():
                if host.get_fact(Sha256File, path=path) != sha256:
                    modified[path] = float("inf")
        stale = certificates.stale_components(starts["started"], modified, components)
        if not stale:
            host.noop(f"kubeadm's certificates are valid until {certificates.describe(certificates.earliest(expiry))}, "
                      "and every component runs with its current files")
            return
    logger.info(f"{host.print_prefix}restart {', '.join(stale)} for their new certificates")
    if due:
        yield f"kubeadm certs renew all --config {shlex.quote(config_path)} >/dev/null"
    for component in stale:
        yield restart(node, component)
    yield wait_for_the_api(f"the API does not answer through its endpoint after the restarts on {node.name}")
