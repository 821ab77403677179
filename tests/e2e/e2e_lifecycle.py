"""What the tests of a cluster's later life (removing nodes, renewing certificates, resetting) need
beside DeployedCluster: copies of the lab's cluster file changed the way a user changes it, what a
machine still holds of the cluster, and the certificates' expiry as the machines hold them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from cluster import certificates, load_checked
from facts.kubernetes import CertificateExpiry

# what a reset machine must no longer have: (what, shell test that succeeds when it is there)
LEFTOVERS = (
    ("the kubelet running", "systemctl is-active --quiet kubelet"),
    ("containerd running", "systemctl is-active --quiet containerd"),
    ("etcd running", "systemctl is-active --quiet etcd"),
    ("the API proxy running", "systemctl is-active --quiet kubeha-api-proxy"),
    ("/etc/kubernetes", "test -e /etc/kubernetes"),
    ("/etc/kubeha", "test -e /etc/kubeha"),
    ("/var/lib/kubelet", "test -e /var/lib/kubelet"),
    ("/etc/cni/net.d", "test -e /etc/cni/net.d"),
    ("kubeadm", "test -e /usr/local/bin/kubeadm"),
    ("table inet kubeha", "nft list table inet kubeha >/dev/null 2>&1"),
    ("KUBE-* or cali-* chains", "{ iptables-nft-save; ip6tables-nft-save; iptables-legacy-save; } 2>/dev/null "
                                "| grep -q -E '^:(KUBE-|cali-)'"),
    ("vxlan.calico", "ip link show vxlan.calico >/dev/null 2>&1"),
    ("a cali* interface", "ip -o link show | grep -q -E ': cali[0-9a-f]+[@:]'"),
    ("the /etc/hosts block", "grep -q 'kubeha cluster hosts' /etc/hosts"),
)


def changed_copy(source: Path, directory: Path, label: str, drop=(), remove=(), add=(), **sections) -> Path:
    """A copy of the cluster file `source` as a user edits it: the hosts named in `drop` and in
    `remove` (entries {name, address}) leave `hosts`, `remove` becomes the `remove:` list, `add`
    (host entries) join `hosts`, and each of `sections` replaces that section."""
    data = yaml.safe_load(source.read_text())
    gone = set(drop) | {entry["name"] for entry in remove}
    data["hosts"] = [h for h in data["hosts"] if h["name"] not in gone] + list(add)
    if remove:
        data["remove"] = list(remove)
    else:
        data.pop("remove", None)
    data.update(sections)
    path = directory / f"{label}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def entry_of(lab, name: str) -> dict:
    """The `remove:` entry of a host of `lab`'s cluster file: its name and address."""
    return {"name": name, "address": lab.host(name).address}


def leftovers(lab, machine: str) -> list[str]:
    """What `machine` still holds of a cluster, of LEFTOVERS; [] when it is reset."""
    script = "; ".join(f"if {test}; then echo {shlex.quote(what)}; fi" for what, test in LEFTOVERS)
    return lab.sudo(machine, script).stdout.splitlines()


def moved_aside(lab, machine: str) -> list[str]:
    """The data directories a reset moved aside on `machine`."""
    found = lab.sudo(machine, "ls -d /var/lib/*.kubeha-reset-* 2>/dev/null || true").stdout.split()
    return sorted({path.split(".kubeha-reset-")[0] for path in found})


def certificate_expiry(lab, machine: str) -> dict:
    """{path: notAfter} of every certificate `machine` holds, as the deploy reads it."""
    definition = load_checked(lab.cluster_file)
    files, kubeconfigs = certificates.held_by(definition, definition.host(machine))
    fact = CertificateExpiry()
    return fact.process(lab.sudo(machine, fact.command(paths=files, kubeconfigs=kubeconfigs)).stdout.splitlines())


def etcd_member_names(lab, via: str) -> list[str]:
    """The external etcd's member names, asked on the member `via`."""
    command = (f"etcdctl --endpoints=https://{lab.host(via).address}:2379 --cacert=/etc/etcd/pki/ca.crt "
               "--cert=/etc/etcd/pki/admin-client.crt --key=/etc/etcd/pki/admin-client.key member list -w json")
    return sorted(m.get("name", "") for m in json.loads(lab.sudo(via, command).stdout)["members"])


def apiserver_etcd_servers(lab, control_plane: str) -> list[str]:
    found = lab.sudo(control_plane, "grep -o -E -- '--etcd-servers=[^\"[:space:]]+' "
                                    "/etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    return found.strip().split("=", 1)[1].split(",")


def api_peers(lab, machine: str) -> set[str]:
    """The addresses `machine` holds established connections to on port 6443."""
    out = lab.sudo(machine, "ss -Htn state established '( dport = :6443 )'").stdout
    return {line.split()[-1].rpartition(":")[0] for line in out.splitlines() if line.strip()}
