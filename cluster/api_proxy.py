"""The workers' localhost API proxy: its packages, its systemd unit and its configuration, for
haproxy or nginx on each family of systems."""

from cluster import paths
from cluster.render import render

SERVICE = "kubeha-api-proxy"
UNIT = f"/etc/systemd/system/{SERVICE}.service"
CONFIG = f"{paths.KUBEADM_DIR}/api-proxy.cfg"
PACKAGES = {
    ("haproxy", "debian"): ["haproxy"],
    ("haproxy", "rhel"): ["haproxy"],
    ("nginx", "debian"): ["nginx", "libnginx-mod-stream"],
    ("nginx", "rhel"): ["nginx", "nginx-mod-stream"],
}
# nginx's stream module and the user its workers run as, as the distributions package them
NGINX = {
    "debian": {"stream_module": "/usr/lib/nginx/modules/ngx_stream_module.so", "user": "www-data"},
    "rhel": {"stream_module": "/usr/lib64/nginx/modules/ngx_stream_module.so", "user": "nginx"},
}


def unit(cluster, program):
    return render("kubeha-api-proxy.service.j2", cluster=cluster, program=program, config=CONFIG)


def config(cluster, node, program, family):
    """The proxy's configuration on `node`: 127.0.0.1:api.port spread over every control plane."""
    extra = NGINX[family] if program == "nginx" else {}
    return render(f"api-proxy-{program}.cfg.j2", cluster=cluster, node=node, **extra)
