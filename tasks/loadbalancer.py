"""API load balancer: keepalived holds the API's virtual IP on one lb host, haproxy on every lb
host spreads the API over all control planes.

Runs on the hosts with the lb role when api.mode is keepalived_haproxy. Alone:
`pyinfra inventory.py tasks/loadbalancer.py`.

The first lb host of the cluster file is the VRRP MASTER (priority 101), each further one a
BACKUP one lower (100, 99, ...), all with the same virtual_router_id and password. keepalived
runs a check script every few seconds (cluster/loadbalancer.py); when this host's haproxy cannot reach
a healthy apiserver the host's priority drops and a BACKUP takes the VIP over. haproxy binds the
VIP on every lb host (net.ipv4.ip_nonlocal_bind), so the new holder serves at once. Adding a
control plane rewrites haproxy.cfg and reloads haproxy; nothing restarts unless its file changed.
"""

from pyinfra.operations import apt, dnf, python, server, systemd

from cluster import loadbalancer
from cluster.context import cluster, has_role, node, os_family, secrets
from operations import stage
from operations.config import config_file

stage.begin(name="Stage: Load balancer", title="Load balancer")


if cluster().api.mode == "keepalived_haproxy" and has_role("lb"):
    family = os_family()
    if family is None:
        python.raise_exception(RuntimeError, "the lb stage supports Debian/Ubuntu and RHEL-like hosts only",
                               name="Install keepalived and haproxy")
    else:
        if family == "debian":
            apt.packages(name="Install keepalived and haproxy", packages=loadbalancer.PACKAGES["debian"],
                         update=True, cache_time=86400)
        else:
            dnf.packages(name="Install keepalived and haproxy", packages=loadbalancer.PACKAGES["rhel"])

        server.sysctl(
            name="Let haproxy bind the VIP while another lb host holds it",
            key="net.ipv4.ip_nonlocal_bind",
            value=1,
            persist=True,
            persist_file="/etc/sysctl.d/90-kubeha-loadbalancer.conf",
        )

        config_file(name="Write haproxy's configuration", path=loadbalancer.HAPROXY_CONFIG,
                    content=loadbalancer.haproxy_config(cluster(), node()), service="haproxy", action="reload")
        config_file(name="Write keepalived's check script", path=loadbalancer.CHECK_SCRIPT,
                    content=loadbalancer.check_script(cluster(), node()), mode="0755")
        config_file(name="Write keepalived's configuration", path=loadbalancer.KEEPALIVED_CONFIG,
                    content=loadbalancer.keepalived_config(cluster(), node(), secrets().vrrp_password),
                    mode="0600", secret=True, service="keepalived", action="reload")

        systemd.service(name="Run haproxy", service="haproxy", running=True, enabled=True)
        systemd.service(name="Run keepalived", service="keepalived", running=True, enabled=True)
