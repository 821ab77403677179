"""Applying manifests to the cluster, from the anchor control plane."""

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents

from cluster import paths
from cluster.context import anchor_control_plane
from operations.failure import retry

KUBECTL = f"kubectl --kubeconfig {paths.ADMIN_CONF}"
API_WAIT_ATTEMPTS = 90  # x 2 s


def wait_for_the_api(what):
    """A command that waits until the API answers /readyz through the cluster's endpoint (the VIP
    or the proxy admin.conf names), failing with `what` after API_WAIT_ATTEMPTS tries: after an
    apiserver restarts, the next step may need the API, and kube-vip may be moving the VIP."""
    return retry(f"{KUBECTL} --request-timeout=5s get --raw=/readyz >/dev/null 2>&1", what, attempts=API_WAIT_ATTEMPTS)


@operation()
def apply(path, content_sha256, present=None, kustomize=False):
    """`kubectl apply` of `path` when its content differs from what was last applied, or when the
    objects it makes are gone (`present()`, if given, reads the cluster when the operation runs).

    A stamp beside `path` records the sha256 of the content last applied.
    """
    if host != anchor_control_plane():
        host.noop("manifests are applied from the anchor control plane")
        return
    stamp = f"{path}.applied"
    applied = (host.get_fact(FileContents, path=stamp) or [""])[0].strip()
    if applied == content_sha256 and (present is None or present()):
        host.noop(f"{path} is applied and in place")
        return
    flag = "-k" if kustomize else "-f"
    yield f"{KUBECTL} apply --server-side --force-conflicts {flag} {shlex.quote(path)}"
    yield f"echo {content_sha256} > {shlex.quote(stamp)}"
