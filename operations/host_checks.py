"""The host checks as an operation: read the facts they decide on, report, and refuse a host
that cannot run its part of the cluster (cluster/host_checks.py decides). Changes nothing."""

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, operation
from pyinfra.facts.files import Sha256File
from pyinfra.facts.server import Arch

from cluster.context import container, os_release
from cluster.host_checks import findings
from facts.containerd import ContainerdState
from facts.host import CgroupVersion, InotifyUsage, OtherFirewalls, Resources, SwapState, TimeSync


def gather(ca_paths):
    """The facts the host checks decide on, read now."""
    os_id, version = os_release()
    resources = host.get_fact(Resources)
    return {
        "os_id": os_id,
        "os_version": version,
        "arch": (host.get_fact(Arch) or "").strip(),
        "cgroup": host.get_fact(CgroupVersion),
        "cpus": resources["cpus"],
        "memory_mb": resources["memory_mb"],
        "container": container(),
        "swap": host.get_fact(SwapState),
        "time": host.get_fact(TimeSync),
        "containerd": host.get_fact(ContainerdState),
        "firewalls": host.get_fact(OtherFirewalls),
        "inotify": host.get_fact(InotifyUsage),
        "ca_sha256": {path: host.get_fact(Sha256File, path=path) for path in ca_paths},
    }


def _refuse(state, host, errors):
    for error in errors:
        host.log_styled(f"host check failed: {error}", fg="red", log_func=logger.error)
    return False  # a failed command: pyinfra fails this host and runs nothing more on it


@operation()
def check_host(cluster, node, local_ca_sha256):
    """Fail this host, naming it and every problem, when it cannot run its part of the cluster;
    print warnings. Changes nothing."""
    errors, warnings = findings(cluster, node, gather(sorted(local_ca_sha256)), local_ca_sha256)
    for warning in warnings:
        host.log_styled(f"host check warning: {warning}", fg="yellow", log_func=logger.warning)
    if not errors:
        host.noop("the host passed its checks")
        return
    if not state.is_executing:  # --dry: say now what the run would stop at
        for error in errors:
            host.log_styled(f"host check will fail: {error}", fg="red", log_func=logger.error)
    yield FunctionCommand(_refuse, (errors,), {})
