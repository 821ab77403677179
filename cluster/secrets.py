"""Secrets of one cluster, generated once on this machine and kept in its state directory.

The directory (see Cluster.state_dir) is 0700 and every file in it 0600. It holds the CAs the
cluster is built on (Kubernetes, front-proxy, etcd), the service-account key pair, the external
etcd members' certificates, the bootstrap token and the VRRP password. Generating them here,
not on the first control plane, means the join's CA hash is known before any host is touched,
and losing a machine never loses a CA. Nothing here is ever printed.
"""

import datetime
import hashlib
import ipaddress
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650  # the leaf certificates' lifetime and renewal window are knobs (certificates.*)
TOKEN_ALPHABET = string.ascii_lowercase + string.digits


def _write_private(path, data):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path

    def load(self):
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        return cert, key

    def exists(self):
        return self.cert.is_file() and self.key.is_file()

    def expires_within(self, days):
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        return cert.not_valid_after_utc - _now() < datetime.timedelta(days=days)


def _certificate(subject, issuer, public_key, signing_key, lifetime, is_ca, extensions=()):
    """A signed certificate with the key usages of a CA or of a leaf, plus `extensions`."""
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=is_ca,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _ensure_ca(pair, common_name):
    if pair.exists():
        return
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = _certificate(name, name, key.public_key(), key, datetime.timedelta(days=CA_DAYS), is_ca=True,
                        extensions=[x509.SubjectKeyIdentifier.from_public_key(key.public_key())])
    _write_private(pair.key, _key_pem(key))
    _write_private(pair.cert, cert.public_bytes(serialization.Encoding.PEM))


def _ensure_leaf(pair, ca, policy, common_name, usages, names=(), addresses=(), organization=None):
    """A certificate signed by `ca`; made again when missing, within `policy`'s renewal window, or
    its SANs changed."""
    wanted_names = sorted(set(names))
    wanted_addresses = sorted(set(addresses))
    if pair.exists() and not pair.expires_within(policy.renew_before):
        cert, _ = pair.load()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            current = (sorted(san.get_values_for_type(x509.DNSName)),
                       sorted(str(a) for a in san.get_values_for_type(x509.IPAddress)))
        except x509.ExtensionNotFound:
            current = ([], [])
        if current == (wanted_names, wanted_addresses):
            return
    ca_cert, ca_key = ca.load()
    key = _new_key()
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    extensions = [x509.ExtendedKeyUsage(usages),
                  x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())]
    if wanted_names or wanted_addresses:
        extensions.append(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in wanted_names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in wanted_addresses]
        ))
    cert = _certificate(x509.Name(attributes), ca_cert.subject, key.public_key(), ca_key,
                        datetime.timedelta(hours=policy.validity_hours), is_ca=False, extensions=extensions)
    _write_private(pair.key, _key_pem(key))
    _write_private(pair.cert, cert.public_bytes(serialization.Encoding.PEM))


SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]
PEER = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


class ClusterSecrets:
    """Paths of the local secrets; `ensure()` creates whatever is missing or due for renewal."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.root = cluster.state_dir
        pki = self.root / "pki"
        self.kubernetes_ca = KeyPair(pki / "ca.crt", pki / "ca.key")
        self.front_proxy_ca = KeyPair(pki / "front-proxy-ca.crt", pki / "front-proxy-ca.key")
        self.service_account = KeyPair(pki / "sa.pub", pki / "sa.key")
        self.etcd_ca = KeyPair(pki / "etcd" / "ca.crt", pki / "etcd" / "ca.key")
        self.apiserver_etcd_client = KeyPair(pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key")
        self.etcd_admin_client = KeyPair(pki / "etcd" / "admin-client.crt", pki / "etcd" / "admin-client.key")
        self.values_file = self.root / "secrets.yaml"
        # the kubectl user's kubeconfig, copied here from a control plane (tasks/kubectl_user.py)
        self.user_kubeconfig = self.root / f"{cluster.kubectl_user.name}.kubeconfig"

    def etcd_member(self, host, kind):
        """kind: server or peer."""
        return KeyPair(self.root / "pki" / "etcd" / f"{host.name}-{kind}.crt",
                       self.root / "pki" / "etcd" / f"{host.name}-{kind}.key")

    def ensure(self):
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        _ensure_ca(self.kubernetes_ca, "kubernetes")
        _ensure_ca(self.front_proxy_ca, "front-proxy-ca")
        _ensure_ca(self.etcd_ca, "etcd-ca")
        if not self.service_account.exists():
            key = _new_key()
            _write_private(self.service_account.key, _key_pem(key))
            _write_private(self.service_account.cert, key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        if self.cluster.etcd.topology == "external":
            policy = self.cluster.certificates
            _ensure_leaf(self.apiserver_etcd_client, self.etcd_ca, policy, "kube-apiserver-etcd-client", CLIENT)
            _ensure_leaf(self.etcd_admin_client, self.etcd_ca, policy, "kubeha-etcd-admin", CLIENT)
            for host in self.cluster.etcd_hosts:
                names, addresses = [host.name, "localhost"], [host.address, "127.0.0.1"]
                _ensure_leaf(self.etcd_member(host, "server"), self.etcd_ca, policy, host.name, PEER, names, addresses)
                _ensure_leaf(self.etcd_member(host, "peer"), self.etcd_ca, policy, host.name, PEER, names, addresses)
        self._ensure_values()
        return self

    def _ensure_values(self):
        values = self.values()
        changed = False
        if "bootstrap_token" not in values:
            pick = lambda n: "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(n))  # noqa: E731
            values["bootstrap_token"] = f"{pick(6)}.{pick(16)}"
            changed = True
        if "vrrp_password" not in values:
            # keepalived uses only the first 8 characters of a PASS authentication
            values["vrrp_password"] = secrets.token_urlsafe(6)[:8]
            changed = True
        if changed:
            _write_private(self.values_file, yaml.safe_dump(values).encode())

    def values(self):
        if not self.values_file.is_file():
            return {}
        return yaml.safe_load(self.values_file.read_text()) or {}

    @property
    def bootstrap_token(self):
        return self.values()["bootstrap_token"]

    @property
    def vrrp_password(self):
        return self.values()["vrrp_password"]

    def ca_cert_hash(self):
        """kubeadm's discovery pin: sha256 of the CA's SubjectPublicKeyInfo."""
        cert = x509.load_pem_x509_certificate(self.kubernetes_ca.cert.read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        return "sha256:" + hashlib.sha256(spki).hexdigest()
