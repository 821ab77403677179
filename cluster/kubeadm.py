"""kubeadm's configuration for each node, rendered from the cluster definition."""

import re

from packaging.version import Version

from cluster import etcd, paths
from cluster.render import render


def refuses_cgroup_v1(kubernetes_version):
    """Whether this kubelet refuses a cgroup v1 host unless told (failCgroupV1), as kubeadm's
    SystemVerification preflight check does: from 1.35 on."""
    return Version(kubernetes_version) >= Version("1.35")


def _ignored_preflight_errors(cluster):
    # the knob says cgroup v1 is wanted: kubeadm must not refuse it either
    if cluster.kubernetes.allow_cgroup_v1 and refuses_cgroup_v1(cluster.kubernetes.version):
        return ["SystemVerification"]
    return []


def _values(cluster, node, secrets, control_plane):
    sans = [cluster.api.endpoint_name, "localhost", "127.0.0.1"]
    if cluster.api_address:
        sans.append(cluster.api_address)
    for plane in cluster.control_planes:
        sans += [plane.name, plane.address]
    sans += [str(extra) for extra in cluster.api.extra_sans]
    return {
        "cluster": cluster,
        "node": node,
        "control_plane": control_plane,
        "schedulable": cluster.kubernetes.control_planes_schedulable,
        "control_plane_endpoint": cluster.control_plane_endpoint,
        "bootstrap_token": secrets.bootstrap_token,
        "ca_cert_hash": secrets.ca_cert_hash(),
        "cert_sans": list(dict.fromkeys(sans)),
        "etcd_endpoints": etcd_endpoints(cluster),
        "ignore_preflight_errors": _ignored_preflight_errors(cluster),
        "allow_cgroup_v1": cluster.kubernetes.allow_cgroup_v1,
        "certificate_validity": certificate_validity(cluster),
    }


def certificate_validity(cluster):
    """certificates.validity_hours as kubeadm writes a duration: `8760h0m0s`."""
    return f"{cluster.certificates.validity_hours}h0m0s"


def etcd_endpoints(cluster):
    """The external etcd members' client URLs, as the apiservers get them; [] with stacked etcd."""
    if cluster.etcd.topology != "external":
        return []
    return [member.client_url for member in etcd.members(cluster)]


def init_config(cluster, node, secrets):
    return render("kubeadm-init.yaml.j2", **_values(cluster, node, secrets, control_plane=True))


def cluster_config(cluster, secrets):
    """kubeadm's ClusterConfiguration alone, for every control plane: what `kubeadm init phase
    upload-config kubeadm` puts into the cluster (later joins read it there) and what `kubeadm
    certs renew` takes the certificates' lifetime from."""
    header = ("# Managed by kubeha (tasks/control_plane.py): the cluster's kubeadm ClusterConfiguration, for\n"
              "# `kubeadm init phase upload-config kubeadm` and `kubeadm certs renew`.\n")
    first = cluster.first_control_plane
    return header + render("kubeadm-cluster.yaml.j2", **_values(cluster, first, secrets, control_plane=True))


def _hours(duration):
    """A Go duration as kubeadm stores it (`8760h0m0s`), in hours; None when unreadable."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(duration or ""))
    if not duration or not match:
        return None
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return hours + minutes / 60 + seconds / 3600


def cluster_config_drift(cluster, current):
    """What the cluster's stored ClusterConfiguration (`current`, as
    facts.kubernetes.KubeadmClusterConfiguration reads it) says otherwise than the cluster file,
    among what can change after `kubeadm init`: {field: (stored, wanted)}, {} when in step."""
    drift = {}
    stored_endpoints = ((current.get("etcd") or {}).get("external") or {}).get("endpoints") or []
    if cluster.etcd.topology == "external" and stored_endpoints != etcd_endpoints(cluster):
        drift["etcd.external.endpoints"] = (stored_endpoints, etcd_endpoints(cluster))
    stored_validity = current.get("certificateValidityPeriod")
    if _hours(stored_validity) != cluster.certificates.validity_hours:
        drift["certificateValidityPeriod"] = (stored_validity, certificate_validity(cluster))
    return drift


def join_config(cluster, node, secrets):
    control_plane = "control_plane" in node.roles
    return render("kubeadm-join.yaml.j2", **_values(cluster, node, secrets, control_plane))


def shared_control_plane_files(cluster, secrets):
    """{path on a control plane: (local file, mode)}: what every control plane shares.

    Only the CAs, the service-account keys and the etcd client credentials, as kubeadm's
    manual certificate distribution lists; kubeadm makes each node's own certificates.
    """
    pki = paths.PKI_DIR
    pairs = {
        "ca": secrets.kubernetes_ca,
        "front-proxy-ca": secrets.front_proxy_ca,
    }
    files = {}
    for name, pair in pairs.items():
        files[f"{pki}/{name}.crt"] = (pair.cert, "0644")
        files[f"{pki}/{name}.key"] = (pair.key, "0600")
    files[f"{pki}/sa.pub"] = (secrets.service_account.cert, "0644")
    files[f"{pki}/sa.key"] = (secrets.service_account.key, "0600")
    files[f"{paths.KUBEADM_ETCD_PKI_DIR}/ca.crt"] = (secrets.etcd_ca.cert, "0644")
    if cluster.etcd.topology == "external":
        files[f"{pki}/apiserver-etcd-client.crt"] = (secrets.apiserver_etcd_client.cert, "0644")
        files[f"{pki}/apiserver-etcd-client.key"] = (secrets.apiserver_etcd_client.key, "0600")
    else:  # kubeadm's stacked etcd signs each member's certificates with this CA
        files[f"{paths.KUBEADM_ETCD_PKI_DIR}/ca.key"] = (secrets.etcd_ca.key, "0600")
    return files
