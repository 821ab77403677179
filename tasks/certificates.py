"""Certificates: kubeadm's renewed on each control plane, one at a time, when one of them expires
within certificates.renew_before days, and every static pod that reads them restarted and serving
again before the next control plane; also a static pod still running with a certificate that
changed since it started (the apiserver's external etcd client certificate, re-issued by the
local CA). A converged cluster renews and restarts nothing.

Runs on the control planes. Alone: `pyinfra inventory.py tasks/certificates.py`.

The other certificates are renewed where they are made: external etcd's by the local CA when the
run starts (cluster/secrets.py; the etcd stage writes them and restarts one member at a time,
keeping the quorum), the kubectl user's by the kubectl user stage. The kubelets rotate their own
client certificates. The lifetime of all of them is certificates.validity_hours.
"""

import hashlib

from cluster import paths
from cluster.context import cluster, has_role, node, secrets
from operations import certificates as certificates_ops
from operations import stage

stage.begin(name="Stage: Certificates", title="Certificates")

if has_role("control_plane"):
    issued = {}
    if cluster().etcd.topology == "external":
        local = secrets().apiserver_etcd_client.cert
        issued[f"{paths.PKI_DIR}/apiserver-etcd-client.crt"] = hashlib.sha256(local.read_bytes()).hexdigest()
    certificates_ops.renew_and_restart(
        name="Renew kubeadm's certificates when due and restart what reads them, one control plane at a time",
        cluster=cluster(),
        node=node(),
        renew_before_days=cluster().certificates.renew_before,
        config_path=f"{paths.KUBEADM_DIR}/kubeadm-cluster.yaml",
        issued=issued,
        _serial=True,
    )
