"""What the deploy downloads, from where, and the sha256 each file must have.

Upstream URLs come from the `downloads.*` base URLs; with `offline.files_url` set,
https://HOST/PATH is fetched as FILES_URL/HOST/PATH instead. Checksums are pinned in
checksums.yaml beside this file; `offline.checksums_file` adds to or replaces them.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cluster.etcd import runs_member
from cluster.schema import KNOBS
from cluster.versions import bare, release_tag

PINNED_CHECKSUMS = Path(__file__).with_name("checksums.yaml")
ANY_ARCH = "any"  # files that are the same for every architecture (manifests)

# Where each release file is upstream: {component: (downloads.<base>, path under that base)}.
# In the path {v} is the bare version (1.35.8), {tag} its release tag (v1.35.8), {arch} amd64
# or arm64. The artifact build lays its mirror out by the same table (artifacts/layout.py).
RELEASE_FILES = {
    "kubeadm": ("kubernetes_url", "/release/{tag}/bin/linux/{arch}/kubeadm"),
    "kubelet": ("kubernetes_url", "/release/{tag}/bin/linux/{arch}/kubelet"),
    "kubectl": ("kubernetes_url", "/release/{tag}/bin/linux/{arch}/kubectl"),
    "containerd": ("github_url", "/containerd/containerd/releases/download/{tag}/containerd-{v}-linux-{arch}.tar.gz"),
    "runc": ("github_url", "/opencontainers/runc/releases/download/{tag}/runc.{arch}"),
    "crictl": ("github_url", "/kubernetes-sigs/cri-tools/releases/download/{tag}/crictl-{tag}-linux-{arch}.tar.gz"),
    "cni_plugins": ("github_url", "/containernetworking/plugins/releases/download/{tag}/cni-plugins-linux-{arch}-{tag}.tgz"),
    "etcd": ("github_url", "/etcd-io/etcd/releases/download/{tag}/etcd-{tag}-linux-{arch}.tar.gz"),
    "calico_manifest": ("github_raw_url", "/projectcalico/calico/{tag}/manifests/calico.yaml"),
    "calico_operator": ("github_raw_url", "/projectcalico/calico/{tag}/manifests/tigera-operator.yaml"),
}
DEFAULT_BASES = {knob.path.split(".", 1)[1]: knob.default for knob in KNOBS if knob.path.startswith("downloads.")}


def release_path(component, version, arch):
    """The path of a release file under its base URL."""
    return RELEASE_FILES[component][1].format(v=bare(version), tag=release_tag(version), arch=arch)


def upstream_url(component, version, arch, bases=None):
    """The URL of a release file upstream; `bases` are the downloads.* base URLs (default: the
    schema's defaults)."""
    return (bases or DEFAULT_BASES)[RELEASE_FILES[component][0]] + release_path(component, version, arch)


@dataclass(frozen=True)
class Download:
    component: str
    version: str
    knob: str  # the cluster-file knob that sets the version
    per_arch: bool = True

    def upstream_url(self, cluster, arch):
        return upstream_url(self.component, self.version, arch, vars(cluster.downloads))

    def url(self, cluster, arch):
        upstream = self.upstream_url(cluster, arch)
        if not cluster.offline.files_url:
            return upstream
        parts = urlsplit(upstream)
        return f"{cluster.offline.files_url}/{parts.netloc}{parts.path}"

    def sha256(self, cluster, arch):
        versions = checksum_table(cluster).get(self.component, {}).get(self.version, {})
        return versions.get(arch if self.per_arch else ANY_ARCH)

    def file_name(self, arch):
        return release_path(self.component, self.version, arch).rsplit("/", 1)[1]


def items(cluster):
    """Every file this cluster's deploy downloads."""
    kube = cluster.kubernetes.version
    runtime = cluster.containerd
    result = [Download(name, kube, "kubernetes.version") for name in ("kubeadm", "kubelet", "kubectl")]
    result += [
        Download("containerd", runtime.version, "containerd.version"),
        Download("runc", runtime.runc_version, "containerd.runc_version"),
        Download("crictl", runtime.crictl_version, "containerd.crictl_version"),
        Download("cni_plugins", runtime.cni_plugins_version, "containerd.cni_plugins_version"),
    ]
    # external: the members' etcd; both topologies: the etcdctl and etcdutl of the snapshots
    result.append(Download("etcd", cluster.etcd.version, "etcd.version"))
    calico = "calico_manifest" if cluster.calico.install == "manifest" else "calico_operator"
    result.append(Download(calico, cluster.calico.version, "calico.version", per_arch=False))
    return result


def for_roles(cluster, roles):
    """The release files a host with these roles fetches (the container runtime and the
    Kubernetes binaries on control planes and workers, the etcd release on the hosts that run an
    etcd member: external etcd's own, or the etcdctl and etcdutl of the snapshots)."""
    wanted = set()
    if "control_plane" in roles or "worker" in roles:
        wanted |= {"kubeadm", "kubelet", "kubectl", "containerd", "runc", "crictl", "cni_plugins"}
    if runs_member(cluster, roles):
        wanted.add("etcd")
    return [item for item in items(cluster) if item.component in wanted]


def by_component(cluster):
    return {item.component: item for item in items(cluster)}


class ChecksumFileError(Exception):
    pass


@lru_cache(maxsize=None)
def _read_table(path):
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ChecksumFileError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise ChecksumFileError(f"{path} must map component -> version -> arch -> sha256")
    return {
        str(component): {bare(version): dict(arches or {}) for version, arches in (versions or {}).items()}
        for component, versions in data.items()
    }


def checksum_table(cluster):
    """{component: {version: {arch: sha256}}}: the pinned table, overlaid by the user's file."""
    table = {component: dict(versions) for component, versions in _read_table(str(PINNED_CHECKSUMS)).items()}
    extra = cluster.offline.checksums_file
    if extra and Path(extra).is_file():
        for component, versions in _read_table(extra).items():
            for version, arches in versions.items():
                table.setdefault(component, {}).setdefault(version, {})
                table[component][version] = {**table[component][version], **arches}
    return table
