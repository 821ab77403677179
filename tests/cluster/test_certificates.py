"""What is due for renewal, what a host holds, and which components run with older files
(cluster/certificates.py), and the lifetime and window the local CA issues external etcd's with."""

import datetime

import yaml
from cryptography import x509

from cluster import certificates
from cluster.model import load
from cluster.secrets import ClusterSecrets
from support import CLUSTER_FILES, local_copy

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
PKI = "/etc/kubernetes/pki"
EXPIRY = {
    f"{PKI}/ca.crt": "2036-11-19T03:31:44Z",
    f"{PKI}/apiserver.crt": "2026-12-10T03:31:45Z",  # in 16.6 days
    f"{PKI}/front-proxy-client.crt": "2027-11-22T03:31:46Z",
    "/etc/kubernetes/admin.conf": "2026-11-20T00:00:00Z",  # expired
    "/var/lib/kubelet/pki/kubelet-client-current.pem": "2026-11-24T00:00:00Z",
}


def cluster_of(name, tmp_path, **overrides):
    cluster, problems = load(local_copy(CLUSTER_FILES[name], tmp_path, **overrides))
    assert not problems
    return cluster


def test_due_is_within_the_window_among_the_paths_asked_expired_included():
    kubeadm = [f"{PKI}/apiserver.crt", f"{PKI}/front-proxy-client.crt", "/etc/kubernetes/admin.conf"]
    assert set(certificates.due(EXPIRY, kubeadm, 30, at=NOW)) == {f"{PKI}/apiserver.crt", "/etc/kubernetes/admin.conf"}
    assert set(certificates.due(EXPIRY, kubeadm, 7, at=NOW)) == {"/etc/kubernetes/admin.conf"}
    # the kubelet's own certificate is not among kubeadm's: never due here
    assert "/var/lib/kubelet/pki/kubelet-client-current.pem" not in certificates.due(EXPIRY, kubeadm, 400, at=NOW)
    assert certificates.due({}, kubeadm, 30, at=NOW) == {}


def test_earliest_and_how_it_is_told():
    path, when = certificates.earliest(EXPIRY)
    assert path == "/etc/kubernetes/admin.conf"
    assert certificates.describe((path, when), at=NOW) == "2026-11-20 00:00 UTC (EXPIRED)"
    soon = ("x", NOW + datetime.timedelta(hours=5))
    assert certificates.describe(soon, at=NOW).endswith("(in 5.0 hours)")
    assert certificates.describe(("x", NOW + datetime.timedelta(days=364.2)), at=NOW).endswith("(in 364 days)")
    assert certificates.earliest({"x": "not a date"}) is None


def test_the_report_names_the_first_to_expire():
    assert certificates.report("cp1", EXPIRY, at=NOW) == "cp1: 2026-11-20 00:00 UTC (EXPIRED), admin.conf"
    assert certificates.report("lb1", {}, at=NOW) is None


def test_what_each_host_holds(tmp_path):
    ha = cluster_of("lab-ha", tmp_path)
    files, kubeconfigs = certificates.held_by(ha, ha.host("cp1"))
    assert f"{PKI}/*.crt" in files and "/etc/etcd/pki/*.crt" in files and certificates.KUBELET_CLIENT in files
    assert "/etc/kubernetes/admin.conf" in kubeconfigs and "/home/kubeops/.kube/config" in kubeconfigs
    assert certificates.held_by(ha, ha.host("w1")) == ([certificates.KUBELET_CLIENT], [])
    assert certificates.held_by(ha, ha.host("lb1")) == ([], [])


def test_kubeadm_leaves_external_etcd_certificates_to_kubeha(tmp_path):
    ha, stacked = cluster_of("lab-ha", tmp_path), cluster_of("topology-a", tmp_path)
    assert f"{PKI}/apiserver-etcd-client.crt" not in certificates.renewed_by_kubeadm(ha)[0]
    assert f"{PKI}/etcd/server.crt" in certificates.renewed_by_kubeadm(stacked)[0]
    assert "etcd" not in certificates.read_by_component(ha)
    assert list(certificates.read_by_component(stacked))[0] == "etcd", "stacked etcd restarts first"
    assert f"{PKI}/apiserver-etcd-client.crt" in certificates.read_by_component(ha)["kube-apiserver"]


def test_stale_components_run_since_before_a_file_changed(tmp_path):
    components = certificates.read_by_component(cluster_of("topology-a", tmp_path))
    started = {"etcd": 1000, "kube-apiserver": 1000, "kube-controller-manager": 3000}
    modified = {f"{PKI}/apiserver.crt": 2000, f"{PKI}/etcd/server.crt": 900,
                "/etc/kubernetes/controller-manager.conf": 2000, "/etc/kubernetes/scheduler.conf": 2000}
    # the scheduler is not running: the kubelet starts it with the new file
    assert certificates.stale_components(started, modified, components) == ["kube-apiserver"]


def validity(pair):
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def test_external_etcd_certificates_follow_the_lifetime_and_the_window(tmp_path, state_dir):
    cluster = cluster_of("lab-ha", tmp_path)
    secrets = ClusterSecrets(cluster).ensure()
    server = secrets.etcd_member(cluster.host("cp1"), "server")
    assert abs(validity(server) - datetime.timedelta(hours=8760, minutes=5)) < datetime.timedelta(minutes=1)
    first = server.cert.read_bytes()
    ClusterSecrets(cluster).ensure()
    assert server.cert.read_bytes() == first, "a certificate outside the window stays"

    # a window wider than what is left: every leaf is issued again, with the new lifetime
    short = cluster_of("lab-ha", tmp_path, **{"certificates": {"renew_before": 400, "validity_hours": 48}})
    ClusterSecrets(short).ensure()
    assert server.cert.read_bytes() != first
    assert abs(validity(server) - datetime.timedelta(hours=48, minutes=5)) < datetime.timedelta(minutes=1)
    assert abs(validity(secrets.apiserver_etcd_client) - datetime.timedelta(hours=48, minutes=5)) \
        < datetime.timedelta(minutes=1)
    ca = secrets.etcd_ca.cert.read_bytes()
    # ... and once renewed, a window narrower than the new lifetime leaves them alone
    renewed = server.cert.read_bytes()
    ClusterSecrets(cluster_of("lab-ha", tmp_path, **{"certificates": {"renew_before": 1, "validity_hours": 48}})).ensure()
    assert server.cert.read_bytes() == renewed
    assert secrets.etcd_ca.cert.read_bytes() == ca, "the CA is never renewed"


def test_the_lifetime_reaches_kubeadm(tmp_path, state_dir):
    from cluster import kubeadm

    cluster = cluster_of("topology-a", tmp_path, **{"certificates": {"validity_hours": 48}})
    secrets = ClusterSecrets(cluster).ensure()
    documents = {d["kind"]: d for d in yaml.safe_load_all(kubeadm.init_config(cluster, cluster.first_control_plane,
                                                                              secrets))}
    assert documents["ClusterConfiguration"]["certificateValidityPeriod"] == "48h0m0s"
    assert yaml.safe_load(kubeadm.cluster_config(cluster, secrets))["certificateValidityPeriod"] == "48h0m0s"
