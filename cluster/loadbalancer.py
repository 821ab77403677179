"""The API load balancer's files on an lb host: haproxy spreading the API over every control
plane, keepalived holding the VIP, and keepalived's check of the local haproxy."""

from cluster.render import render

HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT = "/etc/keepalived/check_apiserver.sh"
PACKAGES = {
    "debian": ["keepalived", "haproxy", "curl", "iproute2"],
    "rhel": ["keepalived", "haproxy", "curl", "iproute"],
}
# keepalived's health check of the local haproxy, as in kubeadm's HA guide
KEEPALIVED_CHECK = {"interval": 3, "weight": -2, "fall": 10, "rise": 2}


def haproxy_config(cluster, node):
    return render("haproxy.cfg.j2", cluster=cluster, node=node)


def check_script(cluster, node):
    return render("check_apiserver.sh.j2", cluster=cluster, node=node)


def keepalived_config(cluster, node, password, script=CHECK_SCRIPT):
    """keepalived.conf of one lb host: the first lb host of the file is the MASTER."""
    return render("keepalived.conf.j2", cluster=cluster, node=node, password=password,
                  check_script=script, check=KEEPALIVED_CHECK)
