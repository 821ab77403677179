"""containerd's registry hosts files that no configuration wants any more."""

import shlex

from pyinfra import host
from pyinfra.api import operation

from facts.containerd import KubehaRegistryHosts


@operation()
def remove_stale_registry_hosts(certs_dir, wanted):
    """Remove the hosts.toml files kubeha wrote for registries no longer configured."""
    found = host.get_fact(KubehaRegistryHosts, certs_dir=certs_dir)
    stale = [path for registry, path in sorted(found.items()) if registry not in wanted]
    if not stale:
        host.noop("no stale registry configuration")
        return
    for path in stale:
        directory = path.rsplit("/", 1)[0]
        yield f"rm -f {shlex.quote(path)} && rmdir --ignore-fail-on-non-empty {shlex.quote(directory)}"
