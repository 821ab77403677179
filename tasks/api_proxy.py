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

from pyinfra.operations import apt, dnf, python, systemd

from cluster import api_proxy
from cluster.context import cluster, has_role, node, os_family
from operations import stage
from operations.config import unit_with_config
from operations.services import packaged_service_off

stage.begin(name="Stage: Workers' API proxy", title="Workers' API proxy")

if has_role("worker") and cluster().uses_localhost_proxy(node()):
    program = cluster().workers.proxy
    family = os_family()
    if family is None:
        python.raise_exception(RuntimeError, "the API proxy supports Debian/Ubuntu and RHEL-like hosts only",
                               name=f"Install {program}")
    else:
        if family == "debian":
            apt.packages(name=f"Install {program}", packages=api_proxy.PACKAGES[program, family],
                         update=True, cache_time=86400)
        else:
            dnf.packages(name=f"Install {program}", packages=api_proxy.PACKAGES[program, family])

        # the package's own service is not the proxy (on Debian it starts at once, nginx on :80);
        # an lb host keeps its haproxy.service, which the lb stage runs
        if not (program == "haproxy" and cluster().api.mode == "keepalived_haproxy" and has_role("lb")):
            packaged_service_off(name=f"Stop the packaged {program} service", service=program,
                                 started_by_package=family == "debian")

        unit_with_config(
            name="Write the API proxy's unit and configuration",
            unit=api_proxy.UNIT, unit_content=api_proxy.unit(cluster(), program),
            config=api_proxy.CONFIG, config_content=api_proxy.config(cluster(), node(), program, family),
            service=api_proxy.SERVICE,
        )
        systemd.service(name="Run the API proxy", service=api_proxy.SERVICE, running=True, enabled=True)
