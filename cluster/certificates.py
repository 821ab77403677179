"""Which certificates a host holds, when they expire and what is due for renewal: pure decisions
on what facts.kubernetes.CertificateExpiry reads (operations/certificates.py acts on them, the
end-of-run report prints them).

kubeha renews three kinds, each when it expires within certificates.renew_before days:
- kubeadm's certificates on each control plane (`kubeadm certs renew all`), then the components
  that read them are restarted;
- external etcd's, issued from the local CA (cluster/secrets.py re-issues them, the etcd stage
  restarts one member at a time);
- the kubectl user's client certificate in its kubeconfig on each control plane.
The kubelets' client certificates are only reported: the kubelet rotates its own. The CAs are
reported too, never renewed.
"""

from datetime import datetime, timedelta, timezone

from cluster import paths

KUBELET_CLIENT = f"{paths.KUBELET_DIR}/pki/kubelet-client-current.pem"
KUBEADM_KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf")


def user_kubeconfig(cluster):
    return f"/home/{cluster.kubectl_user.name}/.kube/config"


def held_by(cluster, node):
    """(files, kubeconfigs) whose certificates `node` holds: the arguments of CertificateExpiry."""
    files, kubeconfigs = [], []
    if "control_plane" in node.roles:
        files += [f"{paths.PKI_DIR}/*.crt", f"{paths.KUBEADM_ETCD_PKI_DIR}/*.crt"]
        kubeconfigs += [f"{paths.KUBERNETES_DIR}/{name}" for name in KUBEADM_KUBECONFIGS] + [user_kubeconfig(cluster)]
    if "control_plane" in node.roles or "worker" in node.roles:
        files.append(KUBELET_CLIENT)
    if "etcd" in node.roles and cluster.etcd.topology == "external":
        files.append(f"{paths.ETCD_PKI_DIR}/*.crt")
    return files, kubeconfigs


def renewed_by_kubeadm(cluster):
    """(files, kubeconfigs) that `kubeadm certs renew all` renews on a control plane. With external
    etcd kubeadm leaves the etcd certificates alone: they are kubeha's (cluster/secrets.py)."""
    files = [f"{paths.PKI_DIR}/{name}.crt" for name in ("apiserver", "apiserver-kubelet-client", "front-proxy-client")]
    if cluster.etcd.topology == "stacked":
        files += [f"{paths.PKI_DIR}/apiserver-etcd-client.crt"]
        files += [f"{paths.KUBEADM_ETCD_PKI_DIR}/{name}.crt" for name in ("server", "peer", "healthcheck-client")]
    return files, [f"{paths.KUBERNETES_DIR}/{name}" for name in KUBEADM_KUBECONFIGS]


def read_by_component(cluster):
    """{static pod: the certificate files and kubeconfigs it reads at start}: what it must be
    restarted for once they change. The apiserver reads its etcd client certificate only at
    start, also when kubeha issues it (external etcd)."""
    components = {
        "kube-apiserver": [f"{paths.PKI_DIR}/apiserver.crt", f"{paths.PKI_DIR}/apiserver-kubelet-client.crt",
                           f"{paths.PKI_DIR}/front-proxy-client.crt", f"{paths.PKI_DIR}/apiserver-etcd-client.crt"],
        "kube-controller-manager": [f"{paths.KUBERNETES_DIR}/controller-manager.conf"],
        "kube-scheduler": [f"{paths.KUBERNETES_DIR}/scheduler.conf"],
    }
    if cluster.etcd.topology == "stacked":
        etcd = [f"{paths.KUBEADM_ETCD_PKI_DIR}/{name}.crt" for name in ("server", "peer")]
        components = {"etcd": etcd, **components}
    return components


def parse_time(value):
    """`2027-11-22T03:31:46Z` as an aware datetime, None when unreadable."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def now():
    return datetime.now(timezone.utc)


def due(expiry, paths, renew_before_days, at=None):
    """{path: notAfter} of the certificates among `paths` (of CertificateExpiry's answer) that
    expire within `renew_before_days` of `at` (now), expired ones included."""
    limit = (at or now()) + timedelta(days=renew_before_days)
    found = {path: parse_time(value) for path, value in expiry.items() if path in paths}
    return {path: when for path, when in found.items() if when and when <= limit}


def earliest(expiry):
    """(path, notAfter) of the certificate that expires first, None when there is none."""
    found = [(when, path) for path, when in ((p, parse_time(v)) for p, v in expiry.items()) if when]
    if not found:
        return None
    when, path = min(found)
    return path, when


def stale_components(started, modified, components):
    """The components (of `read_by_component`) running since before one of their files changed.

    + started: {component: epoch seconds its running container started}; a component not
      running is left out (the kubelet starts it with the current files)
    + modified: {path: epoch seconds of its last change}
    """
    return [name for name, paths in components.items()
            if name in started and any(modified.get(path, 0) > started[name] for path in paths)]


def describe(expiry_entry, at=None):
    """`2027-11-22 03:31 UTC (in 364 days)` for a (path, notAfter) of `earliest`."""
    _, when = expiry_entry
    days = (when - (at or now())).total_seconds() / 86400
    left = f"in {days:.0f} days" if days >= 1 else ("EXPIRED" if days < 0 else f"in {days * 24:.1f} hours")
    return f"{when:%Y-%m-%d %H:%M} UTC ({left})"


def report(node_name, expiry, at=None):
    """`cp1: 2027-11-22 03:31 UTC (in 364 days), apiserver.crt`: the end-of-run report's line
    for the certificate of a host that expires first; None when it holds none."""
    first = earliest(expiry)
    if first is None:
        return None
    return f"{node_name}: {describe(first, at)}, {first[0].rsplit('/', 1)[-1]}"
