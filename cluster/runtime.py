"""The container runtime's configuration: containerd's config.toml and the registry mirrors of
each registry (certs.d/<registry>/hosts.toml)."""

from cluster import paths
from cluster.render import render

UPSTREAM_REGISTRIES = ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io")


def registry_hosts(cluster):
    """{registry: [mirror URL, ...]}: containerd.registry_mirrors first, then
    offline.registry_mirror for every upstream registry."""
    result = {registry: list(mirrors) for registry, mirrors in cluster.containerd.registry_mirrors.items()}
    if cluster.offline.registry_mirror:
        for registry in UPSTREAM_REGISTRIES:
            mirrors = result.setdefault(registry, [])
            if cluster.offline.registry_mirror not in mirrors:
                mirrors.append(cluster.offline.registry_mirror)
    return result


def hosts_toml(registry, mirrors):
    return render("hosts.toml.j2", registry=registry, mirrors=mirrors)


def containerd_config(cluster, node):
    """/etc/containerd/config.toml for this node."""
    return render(
        "containerd-config.toml.j2", cluster=cluster, node=node, socket=paths.CONTAINERD_SOCKET,
        certs_dir=paths.CONTAINERD_CERTS_DIR, runc=paths.RUNC,
        sandbox_image=f"{cluster.kubernetes.image_registry}/pause:{cluster.containerd.pause_image_tag}",
    )
