"""The cluster report printed at the end of every run, and what in it fails the run.

operations/verify.py reads the facts (`readings`, one key per part below); `summary` turns them
into lines and problems. A host this run could not reach is named as not checked.
"""

from pathlib import Path

from cluster import certificates, etcd, paths
from cluster.secrets import ClusterSecrets


def etcd_endpoint(node):
    return f"https://{node.address}:{paths.ETCD_CLIENT_PORT}"


def vip_candidates(cluster):
    """The hosts that may hold the VIP (none without one)."""
    return {"keepalived_haproxy": cluster.lb_hosts, "kube_vip": cluster.control_planes}.get(cluster.api.mode, [])


def user_kubeconfig_command(cluster):
    """The command that reaches the cluster from this machine as the kubectl user."""
    path = str(ClusterSecrets(cluster).user_kubeconfig)
    home = str(Path.home())
    if path.startswith(home + "/"):
        path = "~" + path[len(home):]
    return f"kubectl --kubeconfig {path} get nodes"


def _not_checked(names):
    return f" (not reachable, not checked: {', '.join(names)})" if names else ""


def summary(cluster, readings, at=None):
    """(lines, problems): the report, and what in it fails the run.

    `readings`: "expected_nodes" and "unreachable" (node names), "nodes" (ClusterNodes),
    "versions" ({node: KubeBinaryVersions}), "etcd" ({member: EtcdMemberStatus of its
    endpoint}), "etcd_installed" ({member: EtcdVersion}, external etcd), "vip" ({host: VipHolder}),
    "haproxy" ({lb host: HaproxyBackendsUp}), "certificates" ({host: CertificateExpiry of what it
    holds, cluster/certificates.py held_by}), "api_url" and "api_ok"; a host missing from a
    per-host reading was not checked. `at`: the time certificates' expiry is told from (now).
    """
    lines, problems = [], []
    unreachable = readings["unreachable"]
    expected = [n for n in readings["expected_nodes"] if n not in unreachable]
    nodes = readings["nodes"] or {}
    not_ready = [n for n in expected if not nodes.get(n, {}).get("ready")]
    if not_ready:
        problems.append(f"nodes not Ready: {', '.join(not_ready)}")
    lines.append(f"nodes Ready: {len(expected) - len(not_ready)}/{len(expected)}{_not_checked(unreachable)}")

    versions = readings["versions"]
    if versions:
        lines.append("node versions (kubelet, kubeadm): " + ", ".join(
            f"{name} {found.get('kubelet') or 'none'} {found.get('kubeadm') or 'none'}"
            for name, found in versions.items()))

    candidates = [h.name for h in vip_candidates(cluster)]
    if candidates:
        holders = [name for name, held in readings["vip"].items() if held]
        missed = [name for name in candidates if name not in readings["vip"]]
        held = " and ".join(holders) if holders else "no checked host"
        lines.append(f"VIP {cluster.api.vip} held by {held}{_not_checked(missed)}")

    if cluster.api.mode == "keepalived_haproxy":
        backends = []
        for lb in cluster.lb_hosts:
            if lb.name not in readings["haproxy"]:
                backends.append(f"{lb.name} not checked")
            elif readings["haproxy"][lb.name] is None:
                backends.append(f"{lb.name} stats not answering")
            else:
                servers = readings["haproxy"][lb.name]
                backends.append(f"{lb.name} {sum(servers.values())}/{len(servers)}")
        lines.append(f"haproxy's apiservers up: {', '.join(backends)}")

    members = etcd.member_nodes(cluster)
    status_of = readings["etcd"]
    healthy = sum(bool(status_of.get(m.name, {}).get("healthy")) for m in members)
    if members and healthy <= len(members) // 2:
        problems.append(f"etcd has lost its majority: {healthy}/{len(members)} members healthy")
    if members:
        lines.append(f"etcd members healthy ({cluster.etcd.topology}): {healthy}/{len(members)}")
        for member in members:
            status = status_of.get(member.name, {})
            text = f"etcd {member.name}: {'healthy' if status.get('healthy') else 'NOT healthy'}"
            if status.get("version"):
                text += f", etcd {status['version']}"
            installed = readings["etcd_installed"].get(member.name)
            if installed and status.get("version") and installed != status["version"]:
                text += f" (installed {installed}: it runs that once restarted)"
            lines.append(text)

    first_to_expire = [certificates.report(name, expiry, at) for name, expiry in readings["certificates"].items()]
    if any(first_to_expire):
        lines.append("certificates, the first to expire on each host:")
        lines += [f"  {line}" for line in first_to_expire if line]

    if not readings["api_ok"]:
        problems.append(f"the API does not answer on {readings['api_url']}")
    lines.append(f"API on {readings['api_url']}: {'ok' if readings['api_ok'] else 'NOT answering'}")
    lines.append(f"reach it from here: {user_kubeconfig_command(cluster)}")
    return lines, problems
