"""The host's own state: swap, kernel modules and SELinux labels."""

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Selinux

from facts.host import KernelModules, SelinuxPendingLabels, SwapState
from facts.services import UnitFileState

FSTAB_SWAP = r"^([[:space:]]*[^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap([[:space:]].*)?)$"
COMMENT_FSTAB_SWAP = "sed -i -E " + shlex.quote(f"s/{FSTAB_SWAP}/# kubeha: swap off for Kubernetes: \\1/") + " /etc/fstab"


@operation()
def swap_off(in_container=None):
    """No swap now (swapoff -a), none after a reboot (the fstab lines commented out, swap.target
    masked so no generator's swap unit starts). In a container the swap in use is the machine's,
    and so are its devices: only the container's own fstab is edited."""
    swap = host.get_fact(SwapState)
    changed = False
    if swap["active"] and not in_container:
        changed = True
        yield "swapoff -a"
    if swap["fstab"]:
        changed = True
        yield COMMENT_FSTAB_SWAP
    if not in_container and host.get_fact(UnitFileState, unit="swap.target") != "masked":
        changed = True
        yield "systemctl mask swap.target"
    if not changed:
        if swap["active"]:
            host.noop(f"swap {', '.join(swap['active'])} is the machine's ({in_container}): left alone")
        else:
            host.noop("swap is off")


@operation()
def kernel_modules(modules):
    """Load the modules that are not there yet (modprobe)."""
    present = host.get_fact(KernelModules, modules=list(modules))
    missing = [m for m in modules if m not in present]
    if not missing:
        host.noop(f"{', '.join(modules)} loaded")
        return
    for module in missing:
        yield f"modprobe {shlex.quote(module)}"


@operation()
def selinux_relabel(paths):
    """Give files installed outside a package their SELinux labels (restorecon), when SELinux is
    on and a label differs: a binary moved in from /tmp keeps a temporary file's label, which
    systemd may not execute."""
    if (host.get_fact(Selinux) or {}).get("mode") != "enabled":
        host.noop("SELinux is off")
        return
    if not host.get_fact(SelinuxPendingLabels, paths=list(paths)):
        host.noop(f"SELinux labels of {', '.join(paths)} are right")
        return
    yield f"restorecon -R {' '.join(shlex.quote(p) for p in paths)}"
