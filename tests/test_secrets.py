"""The cluster's local secrets: private files, made once, renewed when their names change."""

import re
import stat
import subprocess

import pytest

from cluster.secrets import ClusterSecrets
from support import cluster_copy, load, shipped_where


def test_secrets_are_private_and_made_once(any_cluster, state_dir):
    cluster = any_cluster
    secrets = ClusterSecrets(cluster).ensure()
    assert stat.S_IMODE(secrets.root.stat().st_mode) == 0o700
    for path in secrets.root.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    before = {p: p.read_bytes() for p in secrets.root.rglob("*") if p.is_file()}
    ClusterSecrets(cluster).ensure()
    assert {p: p.read_bytes() for p in secrets.root.rglob("*") if p.is_file()} == before
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", secrets.bootstrap_token)
    assert len(secrets.vrrp_password) == 8


def test_ca_hash_is_what_openssl_computes(any_cluster, state_dir):
    secrets = ClusterSecrets(any_cluster).ensure()
    public = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(secrets.kubernetes_ca.cert)],
                            capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=public,
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["sha256sum"], input=der, capture_output=True, check=True).stdout.split()[0].decode()
    assert secrets.ca_cert_hash() == f"sha256:{digest}"


@pytest.mark.parametrize("name", shipped_where(lambda cluster: cluster.etcd.topology == "external"))
def test_member_certificate_follows_its_address(name, state_dir, tmp_path):
    cluster, path = cluster_copy(name, tmp_path)
    secrets = ClusterSecrets(cluster).ensure()
    member = cluster.etcd_hosts[0]
    first = secrets.etcd_member(member, "server").cert.read_bytes()
    text = path.read_text().replace(member.address, "10.123.0.99" if "10.123" in member.address
                                    else member.address.rsplit(".", 1)[0] + ".99")
    moved_file = tmp_path / "moved.yaml"
    moved_file.write_text(text)
    moved = load(moved_file)
    ClusterSecrets(moved).ensure()
    assert secrets.etcd_member(member, "server").cert.read_bytes() != first
