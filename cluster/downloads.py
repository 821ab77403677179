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

PINNED_CHECKSUMS = Path(__file__).with_name("checksums.yaml")
ARCHES = ("amd64", "arm64")
ANY_ARCH = "any"  # files that are the same for every architecture (manifests)


@dataclass(frozen=True)
class Download:
    component: str
    version: str
    knob: str  # the cluster-file knob that sets the version
    base_knob: str  # downloads.<base>
    path: str  # path under the base URL; {v} and {arch} are filled in
    per_arch: bool = True

    def upstream_url(self, cluster, arch):
        base = getattr(cluster.downloads, self.base_knob.split(".", 1)[1])
        return base + self.path.format(v=self.version, arch=arch)

    def url(self, cluster, arch):
        upstream = self.upstream_url(cluster, arch)
        if not cluster.offline.files_url:
            return upstream
        parts = urlsplit(upstream)
        return f"{cluster.offline.files_url}/{parts.netloc}{parts.path}"

    def sha256(self, cluster, arch):
        versions = checksum_table(cluster).get(self.component, {}).get(self.version, {})
        return versions.get(arch if self.per_arch else ANY_ARCH)

    @property
    def file_name(self):
        return self.path.rsplit("/", 1)[1]


def items(cluster):
    """Every file this cluster's deploy downloads."""
    kube = cluster.kubernetes.version
    runtime = cluster.containerd
    result = [
        Download(name, kube, "kubernetes.version", "downloads.kubernetes_url",
                 f"/release/v{{v}}/bin/linux/{{arch}}/{name}")
        for name in ("kubeadm", "kubelet", "kubectl")
    ]
    result += [
        Download("containerd", runtime.version, "containerd.version", "downloads.github_url",
                 "/containerd/containerd/releases/download/v{v}/containerd-{v}-linux-{arch}.tar.gz"),
        Download("runc", runtime.runc_version, "containerd.runc_version", "downloads.github_url",
                 "/opencontainers/runc/releases/download/v{v}/runc.{arch}"),
        Download("crictl", runtime.crictl_version, "containerd.crictl_version", "downloads.github_url",
                 "/kubernetes-sigs/cri-tools/releases/download/v{v}/crictl-v{v}-linux-{arch}.tar.gz"),
        Download("cni_plugins", runtime.cni_plugins_version, "containerd.cni_plugins_version",
                 "downloads.github_url",
                 "/containernetworking/plugins/releases/download/v{v}/cni-plugins-linux-{arch}-v{v}.tgz"),
    ]
    # external: the members' etcd; both topologies: the etcdctl and etcdutl of the snapshots
    result.append(Download("etcd", cluster.etcd.version, "etcd.version", "downloads.github_url",
                           "/etcd-io/etcd/releases/download/v{v}/etcd-v{v}-linux-{arch}.tar.gz"))
    if cluster.calico.install == "manifest":
        component, manifest = "calico_manifest", "calico.yaml"
    else:
        component, manifest = "calico_operator", "tigera-operator.yaml"
    result.append(Download(component, cluster.calico.version, "calico.version", "downloads.github_raw_url",
                           f"/projectcalico/calico/v{{v}}/manifests/{manifest}", per_arch=False))
    return result


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
        str(component): {str(version).lstrip("v"): dict(arches or {}) for version, arches in (versions or {}).items()}
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
