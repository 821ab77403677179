"""Services that are not configuration files: one still running a replaced program, and one a
package starts by itself that kubeha does not want."""

import shlex

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.operations import systemd

from facts.services import ServiceExecutable, UnitInstalled


@operation()
def restart_if_running_another(service, binary):
    """Restart `service` when its running process executes another file than `binary` (the
    links moved to a new release, the daemon still runs the old one). containerd keeps its
    containers running across a restart."""
    running = host.get_fact(ServiceExecutable, service=service)
    if not running:
        host.noop(f"{service} is not running")
    elif running == binary:
        host.noop(f"{service} runs {binary}")
    else:
        yield f"systemctl restart {shlex.quote(service)}"


@operation()
def packaged_service_off(service, started_by_package):
    """A service its package starts by itself (Debian starts a service while installing it)
    stopped and disabled. On a fresh host a --dry finds no unit yet, because the package is not
    installed; when `started_by_package`, it still announces the stop the run will make."""
    if not state.is_executing and not host.get_fact(UnitInstalled, unit=f"{service}.service"):
        if started_by_package:
            yield f"systemctl disable --now {shlex.quote(service)}"
        else:
            host.noop(f"{service} is not installed yet, and its package does not start it")
        return
    yield from systemd.service._inner(service=service, running=False, enabled=False)
