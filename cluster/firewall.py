"""The cluster ports' firewall: an nftables table `inet kubeha` that lets only the node, pod and
service networks reach the cluster's ports, loaded by a unit of its own."""

import ipaddress

from cluster import paths
from cluster.system import is_ip
from cluster.render import render

RULES = f"{paths.KUBEADM_DIR}/kubeha.nft"
UNIT = "/etc/systemd/system/kubeha-firewall.service"
NFT = "/usr/sbin/nft"
KUBELET_PORTS = (paths.KUBELET_PORT, paths.KUBE_PROXY_HEALTHZ_PORT, paths.CONTROLLER_MANAGER_PORT,
                 paths.SCHEDULER_PORT)
CALICO_TCP = (paths.CALICO_BGP_PORT, paths.CALICO_TYPHA_PORT, paths.CALICO_FELIX_HEALTH_PORT)
CALICO_UDP = (paths.CALICO_VXLAN_PORT,)


def values(cluster, node):
    """What templates/kubeha.nft.j2 needs on `node`: the cluster's own source networks per
    family and the ports only they may reach."""
    networks = [cluster.network.node_cidr, cluster.network.pod_cidr, cluster.network.service_cidr]
    if cluster.api.mode == "external" and is_ip(cluster.api.external_address):
        networks.append(cluster.api.external_address)  # the load balancer's health checks
    sources = {4: [], 6: []}
    for network in networks:
        parsed = ipaddress.ip_network(network, strict=False)
        if str(parsed) not in sources[parsed.version]:
            sources[parsed.version].append(str(parsed))
    lb_tcp = (paths.HAPROXY_STATS_PORT,) if "lb" in node.roles else ()
    tcp = sorted({cluster.api.port, paths.APISERVER_PORT, *KUBELET_PORTS, *CALICO_TCP, *lb_tcp})
    # client and peer, of stacked (kubeadm's) or external etcd
    etcd_low, etcd_high = sorted((paths.ETCD_CLIENT_PORT, paths.ETCD_PEER_PORT))
    tcp_items = [str(p) for p in tcp if not etcd_low <= p <= etcd_high]
    tcp_items.append(f"{etcd_low}-{etcd_high}" if etcd_high > etcd_low else str(etcd_low))
    tcp_items.sort(key=lambda item: int(item.split("-")[0]))
    return {"sources_v4": sources[4], "sources_v6": sources[6], "tcp_ports": tcp_items,
            "udp_ports": [str(p) for p in CALICO_UDP]}


def rules(cluster, node):
    return render("kubeha.nft.j2", node=node, **values(cluster, node))


def unit(nft=NFT):
    return render("kubeha-firewall.service.j2", nft=nft, rules=RULES)
