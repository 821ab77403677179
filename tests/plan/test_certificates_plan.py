"""Renewing certificates, planned and run by pyinfra against the @fake connector: the lab's HA
cluster as it runs (canned facts), its certificates far from expiry (nothing renewed, nothing
restarted) or within certificates.renew_before (kubeadm's renewed one control plane at a time
with the static pods restarted, external etcd's re-issued and each member restarted, the kubectl
user's re-issued), and only the apiserver's etcd client certificate new. No host is contacted."""

import datetime
import hashlib
import json
import re

import pytest

from cluster import certificates
from support import CLUSTER_FILES, fake_pyinfra, local_copy
from test_etcd_plan import LabHa  # the etcd members' canned facts, from the same local state

STAGES = ("tasks/etcd.py", "tasks/certificates.py", "tasks/kubectl_user.py")
NOW = datetime.datetime.now(datetime.timezone.utc)
PLANES = ("cp1", "cp2", "cp3")
CONTROL_PLANE_FILES = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
                       "/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kubelet/config.yaml"]
USER_KUBECONFIG = "/home/kubeops/.kube/config"


def openssl_date(when):
    return when.strftime("%b %d %H:%M:%S %Y GMT")


def expiry_lines(paths, days):
    return [f"{path} notAfter={openssl_date(NOW + datetime.timedelta(days=days))}" for path in paths]


def running(lab, days_left, etcd_client_sha=None):
    """Canned facts of the HA cluster whose kubeadm and kubectl user certificates expire in
    `days_left` days and whose static pods started after their files last changed."""
    files, kubeconfigs = certificates.renewed_by_kubeadm(lab.cluster)
    components = certificates.read_by_component(lab.cluster)
    started = (NOW - datetime.timedelta(days=1)).timestamp()
    containers = {"containers": [{"metadata": {"name": name}, "createdAt": str(int(started * 1e9))}
                                 for name in components]}
    local_client = lab.secrets.apiserver_etcd_client.cert
    client_sha = etcd_client_sha or hashlib.sha256(local_client.read_bytes()).hexdigest()
    responses = {}
    for name in PLANES:
        responses[name] = {
            f"for f in {USER_KUBECONFIG}": expiry_lines([USER_KUBECONFIG], days_left),
            "openssl x509 -enddate": expiry_lines(files + kubeconfigs, days_left),
            "crictl ps --state running": ["#kubeha:containers", json.dumps(containers), "#kubeha:modified",
                                          *[f"{int(started) - 86400} {p}" for paths in components.values()
                                            for p in paths]],
            "sha256sum /etc/kubernetes/pki/apiserver-etcd-client.crt ":
                f"{client_sha}  /etc/kubernetes/pki/apiserver-etcd-client.crt",
            f"%N' {USER_KUBECONFIG} ": f"user=kubeops group=kubeops mode=-rw------- atime=1 mtime=1 ctime=1 size=1 "
                                       f"'{USER_KUBECONFIG}'",
            "for f in /etc/kubernetes/kubelet.conf": CONTROL_PLANE_FILES,
            **lab.converged(name),
        }
    return responses


def run(workdir, responses, execute=False, **knobs):
    """The stages' plan [(operation, [nodes changed])], or with `execute` the commands the run
    gives, in order: ([(node, command)], output)."""
    result = fake_pyinfra(local_copy(CLUSTER_FILES["lab-ha"], workdir, **knobs), workdir / "state", " ".join(STAGES),
                          responses, execute=execute, check=not execute)
    return (result.sequence if execute else result.plan), result.output


def changed(plan, *prefixes):
    return {name: hosts for name, hosts in plan if hosts and name.startswith(prefixes)}


RENEWALS = ("Renew kubeadm's certificates", "etcd PKI:", "etcd: restart", "Make the kubectl user's certificate")
SHORT = {"certificates": {"renew_before": 400, "validity_hours": 48}}


@pytest.fixture
def lab(tmp_path):
    return LabHa(tmp_path)


def test_a_converged_cluster_renews_and_restarts_nothing(tmp_path, lab):
    plan, _ = run(tmp_path, running(lab, days_left=300))
    assert {name for name, _ in plan} >= {
        "Renew kubeadm's certificates when due and restart what reads them, one control plane at a time",
        "Make the kubectl user's certificate and kubeconfig, again when due"}
    assert changed(plan, *RENEWALS) == {}


def test_certificates_within_the_window_are_all_renewed(tmp_path, lab):
    plan, output = run(tmp_path, running(lab, days_left=300), **SHORT)
    renewals = changed(plan, *RENEWALS)
    assert renewals.pop("Renew kubeadm's certificates when due and restart what reads them, one control plane "
                        "at a time") == list(PLANES)
    assert renewals.pop("Make the kubectl user's certificate and kubeconfig, again when due") == list(PLANES)
    assert renewals.pop("etcd: restart a changed member, keeping the quorum") == list(PLANES)
    # the local CA issued every member's certificates again (the CA itself stays)
    assert set(renewals) == {"etcd PKI: server.crt", "etcd PKI: server.key", "etcd PKI: peer.crt", "etcd PKI: peer.key",
                             "etcd PKI: admin-client.crt", "etcd PKI: admin-client.key"}
    assert "renew kubeadm's certificates: 7 expire within 400 days" in output
    assert "restart kube-apiserver, kube-controller-manager, kube-scheduler for their new certificates" in output

    ran, output = run(tmp_path, running(lab, days_left=300), execute=True, **SHORT)
    on = lambda node, pattern: [i for i, (n, c) in enumerate(ran) if n == node and re.search(pattern, c)]  # noqa: E731
    for plane in PLANES:
        (renew,) = on(plane, r"^kubeadm certs renew all --config /etc/kubeha/kubeadm-cluster\.yaml")
        restarts = [on(plane, rf"--name '\^{c}\$'")[0] for c in ("kube-apiserver", "kube-controller-manager",
                                                                 "kube-scheduler")]
        assert renew < restarts[0] < restarts[1] < restarts[2], (plane, renew, restarts)
        (user,) = on(plane, r"kubeadm kubeconfig user")
        assert "--validity-period 48h" in ran[user][1]
    # one control plane at a time: the next starts only once this one's components serve again
    spans = sorted((min(on(p, r"crictl stop|kubeadm certs")), max(on(p, r"crictl stop|kubeadm certs"))) for p in PLANES)
    assert all(first[1] < second[0] for first, second in zip(spans, spans[1:])), spans


def test_a_new_etcd_client_certificate_restarts_only_the_apiservers(tmp_path, lab):
    plan, output = run(tmp_path, running(lab, days_left=300, etcd_client_sha="0" * 64))
    assert changed(plan, "Renew kubeadm's certificates") == {
        "Renew kubeadm's certificates when due and restart what reads them, one control plane at a time": list(PLANES)}
    assert "restart kube-apiserver for their new certificates" in output
    assert "renew kubeadm's certificates:" not in output
