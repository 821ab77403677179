"""etcd as the cluster file describes it: which nodes run a member and how a member is laid out
(either topology: its data dir, the client certificate etcdctl uses on it, a unit or kubeadm's
static pod), and for external etcd its members, where a member's files live, its systemd unit and
start-up environment, its PKI, and the fingerprint a restart is decided on. Nothing here touches
a host; operations/etcd.py decides the membership."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from cluster import paths
from cluster.render import render


@dataclass(frozen=True)
class Member:
    name: str
    address: str
    inventory_name: str  # the pyinfra host, for the one check that reads another host's facts
    client_port: int = paths.ETCD_CLIENT_PORT
    peer_port: int = paths.ETCD_PEER_PORT

    @property
    def client_url(self):
        return f"https://{self.address}:{self.client_port}"

    @property
    def peer_url(self):
        return f"https://{self.address}:{self.peer_port}"

    def __str__(self):
        return self.name


def member_nodes(cluster):
    """The nodes that run an etcd member: the etcd hosts (external etcd), or the control planes,
    where kubeadm runs etcd as a static pod (stacked)."""
    return cluster.etcd_hosts if cluster.etcd.topology == "external" else cluster.control_planes


def runs_member(cluster, roles):
    """Whether a host with these roles runs an etcd member (see member_nodes)."""
    return ("etcd" if cluster.etcd.topology == "external" else "control_plane") in roles


def members(cluster):
    """The etcd members of either topology, in the cluster file's order (kubeadm names stacked
    members after their node)."""
    return tuple(Member(name=n.name, address=n.address, inventory_name=n.name) for n in member_nodes(cluster))


def etcdctl(endpoints, tls, args):
    """etcdctl ARGS against `endpoints`, with the client certificate `tls` ({cacert, cert, key})."""
    return (f"etcdctl --endpoints={shlex.quote(','.join(endpoints))}"
            f" --cacert={shlex.quote(tls['cacert'])} --cert={shlex.quote(tls['cert'])}"
            f" --key={shlex.quote(tls['key'])} --dial-timeout=2s --command-timeout=10s {args}")


@dataclass(frozen=True)
class EtcdLayout:
    """Where a member's etcd keeps its data, which client certificate etcdctl uses on it, and
    how it runs: the deploy's systemd unit (external) or kubeadm's static pod (stacked)."""

    topology: str
    data_dir: str
    cacert: str
    cert: str
    key: str
    owner: str | None  # the user its data belongs to (None: root)
    manifest: str | None  # stacked: kubeadm's etcd.yaml

    @property
    def tls(self):
        return {"cacert": self.cacert, "cert": self.cert, "key": self.key}

    def etcdctl(self, endpoints, args):
        return etcdctl(endpoints, self.tls, args)


def layout(cluster):
    """The layout of this cluster's members."""
    if cluster.etcd.topology == "external":
        pki = paths.ETCD_PKI_DIR
        return EtcdLayout("external", paths.ETCD_DATA_DIR, f"{pki}/ca.crt", f"{pki}/admin-client.crt",
                          f"{pki}/admin-client.key", owner="etcd", manifest=None)
    # kubeadm's own client certificate for its etcd health checks, signed by the cluster's etcd CA
    pki = paths.KUBEADM_ETCD_PKI_DIR
    return EtcdLayout("stacked", paths.STACKED_ETCD_DATA_DIR, f"{pki}/ca.crt", f"{pki}/healthcheck-client.crt",
                      f"{pki}/healthcheck-client.key", owner=None, manifest=static_pod_manifest("etcd"))


def static_pod_manifest(pod):
    return f"{paths.MANIFESTS_DIR}/{pod}.yaml"


@dataclass(frozen=True)
class Etcd:
    """The etcd cluster as the cluster file describes it, and where its files live on a member."""

    members: tuple
    token: str
    data_dir: str = paths.ETCD_DATA_DIR
    pki_dir: str = paths.ETCD_PKI_DIR

    def __str__(self):
        return f"etcd cluster {self.token} ({', '.join(m.name for m in self.members)})"

    def member(self, name):
        return next(m for m in self.members if m.name == name)

    @property
    def endpoints(self):
        return [m.client_url for m in self.members]

    @property
    def quorum(self):
        return len(self.members) // 2 + 1

    @property
    def wal_dir(self):
        # etcd decides "I have been bootstrapped" by its WAL; so do we
        return f"{self.data_dir}/member/wal"

    @property
    def tls(self):
        """The admin client's files, for the facts and etcdctl."""
        return {"cacert": f"{self.pki_dir}/ca.crt", "cert": f"{self.pki_dir}/admin-client.crt",
                "key": f"{self.pki_dir}/admin-client.key"}

    def etcdctl(self, endpoints, args):
        return etcdctl(endpoints, self.tls, args)

    def initial_cluster(self, pairs=None):
        """etcd's --initial-cluster: name=peer URL of each member (default: the file's members)."""
        pairs = pairs if pairs is not None else [(m.name, m.peer_url) for m in self.members]
        return ",".join(f"{name}={url}" for name, url in pairs)


def from_cluster(cluster, inventory_names, data_dir=paths.ETCD_DATA_DIR, pki_dir=paths.ETCD_PKI_DIR):
    """The Etcd of a cluster file; `inventory_names` maps a node's name to its pyinfra host."""
    members = tuple(
        Member(name=n.name, address=n.address, inventory_name=inventory_names.get(n.name, n.name))
        for n in cluster.etcd_hosts
    )
    return Etcd(members=members, token=cluster.name, data_dir=data_dir, pki_dir=pki_dir)


def unit(etcd, member, bin_dir=paths.BIN_DIR):
    """The systemd unit of one member (templates/etcd.service.j2)."""
    me = etcd.member(member)
    return render(
        "etcd.service.j2", member=me.name, address=me.address, token=etcd.token,
        client_port=me.client_port, peer_port=me.peer_port, metrics_port=paths.ETCD_METRICS_PORT,
        data_dir=etcd.data_dir, pki_dir=etcd.pki_dir, bin_dir=bin_dir, env_file=paths.ETCD_ENV_FILE,
    )


def initial_env(etcd, member, state_name, pairs=None):
    """The start-up environment file of one member (templates/etcd-initial-cluster.env.j2)."""
    return render("etcd-initial-cluster.env.j2", member=member, data_dir=etcd.data_dir,
                  state=state_name, initial_cluster=etcd.initial_cluster(pairs))


def pki_files(secrets, node):
    """{file name in the member's PKI dir: (local file in the cluster's state, is a key)}.

    ca.crt, server.* and peer.* are etcd's (owned by the etcd user); admin-client.* is the
    identity etcdctl uses for the facts and the membership operations (root only).
    """
    server, peer = secrets.etcd_member(node, "server"), secrets.etcd_member(node, "peer")
    return {
        "ca.crt": (secrets.etcd_ca.cert, False),
        "server.crt": (server.cert, False),
        "server.key": (server.key, True),
        "peer.crt": (peer.cert, False),
        "peer.key": (peer.key, True),
        "admin-client.crt": (secrets.etcd_admin_client.cert, False),
        "admin-client.key": (secrets.etcd_admin_client.key, True),
    }


def etcd_owned(pki):
    """The PKI files the etcd process reads (the rest stay root's)."""
    return sorted(name for name in pki if not name.startswith("admin-client"))


def applied_for(unit_content, pki):
    """What a member must have been started with: its unit and the PKI files etcd reads."""
    return applied_hash(unit_content, *(pki[name][0].read_bytes() for name in etcd_owned(pki)))


def applied_hash(*contents):
    """The fingerprint of what a member runs with (its unit and certificates)."""
    digest = hashlib.sha256()
    for content in contents:
        data = content.encode() if isinstance(content, str) else content
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()
