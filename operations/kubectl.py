"""Applying manifests to the cluster, from the anchor control plane."""

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents

from cluster import paths
from cluster.context import anchor_control_plane

KUBECTL = f"kubectl --kubeconfig {paths.ADMIN_CONF}"


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
