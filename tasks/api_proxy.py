"""The workers' localhost API proxy: 127.0.0.1:api.port on each worker, spread over every control
plane's apiserver, so a worker keeps reaching the API while any control plane is down.

Runs on the workers when workers.api_access is localhost_proxy (or api.mode is none). Alone:
`pyinfra inventory.py tasks/api_proxy.py`.

A systemd service, kubeha-api-proxy, not a static pod: it must answer before `kubeadm join`
runs, and it follows the cluster file: the control planes are listed in its configuration, so
adding one rewrites the file and reloads the proxy (no restart, no manual step). haproxy
(workers.proxy, the default) checks each apiserver's /healthz and skips one that fails until it
answers again; nginx skips an apiserver that refuses connections for 10s, then tries it again.
The proxy has its own unit and configuration file, so a host that is also an lb host keeps its
haproxy.service for the VIP apart.
"""

import hashlib

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import Sha256File
from pyinfra.operations import apt, dnf, python, systemd

from cluster.context import cluster, has_role, hosts_with_role, node
from cluster.render import render
from operations.config import config_file
from operations import stage
from operations.host import os_family, packaged_service_off

stage.begin(name="Stage: Workers' API proxy", title="Workers' API proxy")

SERVICE = "kubeha-api-proxy"
UNIT = f"/etc/systemd/system/{SERVICE}.service"
CONFIG = "/etc/kubeha/api-proxy.cfg"
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


@operation()
def proxy_files(unit, config):
    """The proxy's unit and configuration, and one action for both, decided when it runs: a
    changed unit (another program) restarts the proxy once both files are in place; a changed
    configuration alone reloads it."""
    unit_changed = host.get_fact(Sha256File, path=UNIT) != hashlib.sha256(unit.encode()).hexdigest()
    if unit_changed:
        yield from config_file._inner(path=CONFIG, content=config)
        yield from config_file._inner(path=UNIT, content=unit, daemon_reload=True, service=SERVICE,
                                      action="restart")
    else:
        yield from config_file._inner(path=CONFIG, content=config, service=SERVICE, action="reload")


if has_role("worker") and cluster().uses_localhost_proxy(node()):
    program = cluster().workers.proxy
    family = os_family()
    if family is None:
        python.raise_exception(RuntimeError, "the API proxy supports Debian/Ubuntu and RHEL-like hosts only",
                               name=f"Install {program}")
    else:
        if family == "debian":
            apt.packages(name=f"Install {program}", packages=PACKAGES[program, family],
                         update=True, cache_time=86400)
        else:
            dnf.packages(name=f"Install {program}", packages=PACKAGES[program, family])

        # the package's own service is not the proxy (on Debian it starts at once, nginx on :80);
        # an lb host keeps its haproxy.service, which the lb stage runs
        if not (program == "haproxy" and cluster().api.mode == "keepalived_haproxy" and has_role("lb")):
            packaged_service_off(name=f"Stop the packaged {program} service", service=program,
                                 started_by_package=family == "debian")

        values = {"cluster": cluster(), "node": node(),
                  "apiserver_port": hosts_with_role("control_plane")[0].data.apiserver_port}
        if program == "nginx":
            values.update(NGINX[family])
        proxy_files(
            name="Write the API proxy's unit and configuration",
            unit=render("kubeha-api-proxy.service.j2", cluster=cluster(), program=program, config=CONFIG),
            config=render(f"api-proxy-{program}.cfg.j2", **values),
        )
        systemd.service(name="Run the API proxy", service=SERVICE, running=True, enabled=True)
