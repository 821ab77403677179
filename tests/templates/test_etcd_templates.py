"""The etcd member's unit and start-up environment, rendered for the cluster files with external
etcd, and the member certificates of the local state they point at."""

import configparser
import ipaddress
import shlex
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster import etcd as etcd_plan, paths
from cluster.secrets import ClusterSecrets
from support import shipped, shipped_where

EXTERNAL = shipped_where(lambda cluster: cluster.etcd.topology == "external")


def service(unit_text):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(unit_text)
    return parser


def flags(unit_text):
    """{flag: value} of ExecStart, and the program."""
    argv = shlex.split(service(unit_text)["Service"]["ExecStart"].replace("\\\n", " ").replace("\\", " "))
    return argv[0], dict(arg[2:].split("=", 1) for arg in argv[1:])


@pytest.mark.parametrize("name", EXTERNAL)
def test_every_member_gets_tls_everywhere_and_its_own_addresses(name):
    cluster = shipped(name)
    etcd = etcd_plan.from_cluster(cluster, {})
    assert etcd.token == cluster.name and len(etcd.members) == 3
    for member in etcd.members:
        unit = etcd_plan.unit(etcd, member.name)
        parsed = service(unit)
        assert parsed["Service"]["Type"] == "notify"
        assert parsed["Service"]["User"] == "etcd"
        assert parsed["Service"]["EnvironmentFile"] == paths.ETCD_ENV_FILE  # no "-": no start before it exists
        program, given = flags(unit)
        address = member.address
        assert program == "/usr/local/bin/etcd"
        assert given["name"] == member.name
        assert given["data-dir"] == "/var/lib/kubeha-etcd"
        assert given["listen-client-urls"] == f"https://{address}:2379,https://127.0.0.1:2379"
        assert given["advertise-client-urls"] == f"https://{address}:2379"
        assert given["listen-peer-urls"] == given["initial-advertise-peer-urls"] == f"https://{address}:2380"
        assert given["initial-cluster"] == "${INITIAL_CLUSTER}"
        assert given["initial-cluster-state"] == "${INITIAL_CLUSTER_STATE}"
        assert given["initial-cluster-token"] == cluster.name
        assert given["client-cert-auth"] == given["peer-client-cert-auth"] == "true"
        assert given["trusted-ca-file"] == given["peer-trusted-ca-file"] == "/etc/etcd/pki/ca.crt"
        assert (given["cert-file"], given["key-file"]) == ("/etc/etcd/pki/server.crt", "/etc/etcd/pki/server.key")
        assert (given["peer-cert-file"], given["peer-key-file"]) == ("/etc/etcd/pki/peer.crt", "/etc/etcd/pki/peer.key")
        assert given["listen-metrics-urls"] == "http://127.0.0.1:2381"
        assert given["auto-compaction-mode"] == "periodic" and given["auto-compaction-retention"]
        assert int(given["snapshot-count"]) == 10000
        # every URL etcd serves is https, except the metrics on loopback
        urls = [u for key in ("listen-client-urls", "advertise-client-urls", "listen-peer-urls")
                for u in given[key].split(",")]
        assert all(u.startswith("https://") for u in urls)


@pytest.mark.parametrize("name", EXTERNAL)
def test_the_new_cluster_environment_lists_every_member(name):
    cluster = shipped(name)
    etcd = etcd_plan.from_cluster(cluster, {})
    env = etcd_plan.initial_env(etcd, etcd.members[0].name, "new")
    values = dict(line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#"))
    assert values["INITIAL_CLUSTER_STATE"] == "new"
    assert values["INITIAL_CLUSTER"] == ",".join(f"{h.name}=https://{h.address}:2380" for h in cluster.etcd_hosts)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    etcd = etcd_plan.from_cluster(shipped("lab-ha"), {})
    bin_dir = tmp_path / "bin"  # verify wants the program to exist
    bin_dir.mkdir()
    (bin_dir / "etcd").write_text("#!/bin/sh\n")
    (bin_dir / "etcd").chmod(0o755)
    unit = tmp_path / "etcd.service"
    unit.write_text(etcd_plan.unit(etcd, "cp2", bin_dir=str(bin_dir)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    # verify exits 0 on settings it ignores, so any message counts as a failure
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_the_member_certificates_name_the_host_its_address_and_loopback(state_dir):
    cluster = shipped("lab-ha")
    secrets = ClusterSecrets(cluster).ensure()
    ca = x509.load_pem_x509_certificate(secrets.etcd_ca.cert.read_bytes())
    for node in cluster.etcd_hosts:
        pki = etcd_plan.pki_files(secrets, node)
        assert set(pki) == {"ca.crt", "server.crt", "server.key", "peer.crt", "peer.key",
                            "admin-client.crt", "admin-client.key"}
        assert [name for name, (_, is_key) in pki.items() if is_key] == ["server.key", "peer.key", "admin-client.key"]
        for kind in ("server", "peer"):
            cert, key = secrets.etcd_member(node, kind).load()
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert set(san.get_values_for_type(x509.DNSName)) >= {node.name, "localhost"}
            assert set(san.get_values_for_type(x509.IPAddress)) >= {
                ipaddress.ip_address(node.address), ipaddress.ip_address("127.0.0.1")}
            usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
            # both: etcd's gRPC gateway dials itself as a client with the server certificate
            assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
            assert cert.issuer == ca.subject
            ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                                   cert.signature_hash_algorithm)
            assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    admin, _ = secrets.etcd_admin_client.load()
    assert set(admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.CLIENT_AUTH}
    # the fingerprint a restart is decided on covers what etcd reads, not etcdctl's identity
    node = cluster.etcd_hosts[0]
    pki = etcd_plan.pki_files(secrets, node)
    assert etcd_plan.etcd_owned(pki) == ["ca.crt", "peer.crt", "peer.key", "server.crt", "server.key"]
    assert etcd_plan.applied_for("unit", pki) != etcd_plan.applied_for("unit changed", pki)

