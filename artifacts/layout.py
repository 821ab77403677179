"""Where every artifact goes: upstream URLs, paths in the cache, image names.

Pure functions of the versions, so the deploy and the lab can import them too.
"""
import os

from cluster import downloads

from . import versions as V

DEFAULT_ROOT = "/var/cache/kubeha-lab/artifacts"

# The components of checksums.yaml, in the order docs/design.md lists them.
CHECKSUM_COMPONENTS = (
    "kubeadm", "kubelet", "kubectl", "etcd", "containerd", "runc", "crictl",
    "cni_plugins", "calico_manifest",
)


# Files that are the same for every architecture; the deploy looks their sums up under "any"
# (cluster/downloads.py ANY_ARCH), so they are written under both "any" and the arch.
ARCH_INDEPENDENT = ("calico_manifest",)
ANY_ARCH = "any"


def root():
    """The artifacts cache; KUBEHA_ARTIFACTS_DIR overrides it (tests use a temporary one)."""
    return os.environ.get("KUBEHA_ARTIFACTS_DIR", DEFAULT_ROOT)


def files_dir(base=None):
    return os.path.join(base or root(), "files")


def images_dir(base=None):
    return os.path.join(base or root(), "images")


def checksums_path(base=None):
    return os.path.join(base or root(), "checksums.yaml")


def manifest_path(base=None):
    return os.path.join(base or root(), "manifest.json")


# The version of each checksum component, by its key in versions.VERSIONS.
COMPONENT_VERSIONS = {
    "kubeadm": "kubernetes", "kubelet": "kubernetes", "kubectl": "kubernetes", "etcd": "etcd",
    "containerd": "containerd", "runc": "runc", "crictl": "crictl", "cni_plugins": "cni_plugins",
    "calico_manifest": "calico",
}


def file_urls(versions=None, arch=V.ARCH):
    """{component: (version, upstream https URL)} for every file the deploy downloads, laid
    out as the deploy fetches them (cluster/downloads.py)."""
    v = dict(V.VERSIONS, **(versions or {}))
    return {component: (v[key], downloads.upstream_url(component, v[key], arch))
            for component, key in COMPONENT_VERSIONS.items()}


def url_to_path(url, base=None):
    """https://HOST/PATH -> <files>/HOST/PATH, the layout `files_url` mirrors."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or ".." in rest.split("/"):
        raise ValueError("not a download URL: %r" % url)
    return os.path.join(files_dir(base), rest)


def file_path(component, base=None, versions=None):
    return url_to_path(file_urls(versions)[component][1], base)


# Images: upstream reference -> the registry path the design stores it under (upstream
# repository path without the registry host).
def image_refs(versions=None):
    """{key: upstream image reference} for every image the deploy runs, and the e2e tests' agnhost."""
    v = dict(V.VERSIONS, **(versions or {}))
    k8s = v["kubernetes"]
    refs = {}
    for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        refs[n] = "registry.k8s.io/%s:%s" % (n, k8s)
    refs["pause"] = "registry.k8s.io/pause:%s" % v["pause"]
    refs["coredns"] = "registry.k8s.io/coredns/coredns:%s" % v["coredns"]
    refs["etcd"] = "registry.k8s.io/etcd:%s" % v["etcd_image"]
    refs["agnhost"] = "registry.k8s.io/e2e-test-images/agnhost:%s" % v["agnhost"]
    refs["kube-vip"] = "ghcr.io/kube-vip/kube-vip:%s" % v["kube_vip"]
    # calico.yaml names them quay.io/calico/...; registry_mirror serves quay.io and docker.io.
    for n in ("cni", "node", "kube-controllers"):
        refs["calico-" + n] = "quay.io/calico/%s:%s" % (n, v["calico"])
    return refs


def split_ref(ref):
    """'registry.k8s.io/coredns/coredns:v1.13.1' -> ('registry.k8s.io', 'coredns/coredns', 'v1.13.1')."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError("image reference needs a tag: %r" % ref)
    host, _, repo = name.partition("/")
    if "." not in host and ":" not in host:
        host, repo = "docker.io", name
    return host, repo, tag


def registry_path(ref):
    """Where the lab registry stores an upstream image: 'coredns/coredns:v1.13.1'."""
    _, repo, tag = split_ref(ref)
    return "%s:%s" % (repo, tag)


def archive_name(ref):
    """File name of an image's OCI archive: registry.k8s.io/coredns/coredns:v1.13.1 ->
    coredns_coredns_v1.13.1.oci.tar"""
    _, repo, tag = split_ref(ref)
    return "%s_%s.oci.tar" % (repo.replace("/", "_"), tag)


def archive_path(ref, base=None):
    return os.path.join(images_dir(base), archive_name(ref))


# checksums.yaml ---------------------------------------------------------------------------

def render_checksums(data):
    """YAML for {component: {version: {arch: sha256}}}, components in the design's order.

    Written by hand (the structure is fixed) so the output is stable and needs no library;
    every scalar is quoted so versions like 2.2.3 stay strings.
    """
    lines = ["# Written by `python3 -m artifacts build`: sha256 of the artifacts built here.",
             "# Format {component: {version: {arch: sha256}}} (docs/design.md, checksums_file)."]
    order = [c for c in CHECKSUM_COMPONENTS if c in data] + sorted(set(data) - set(CHECKSUM_COMPONENTS))
    for comp in order:
        lines.append("%s:" % comp)
        for ver in sorted(data[comp]):
            lines.append('  "%s":' % ver)
            for arch in sorted(data[comp][ver]):
                sha = data[comp][ver][arch]
                if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                    raise ValueError("not a sha256 for %s %s %s: %r" % (comp, ver, arch, sha))
                lines.append('    %s: "%s"' % (arch, sha))
    return "\n".join(lines) + "\n"


def checksums_from_files(base=None, versions=None, arch=V.ARCH):
    """Build the checksums mapping from the `.sha256` files next to the built files."""
    out = {}
    for comp, (ver, url) in file_urls(versions, arch).items():
        p = url_to_path(url, base) + ".sha256"
        if os.path.exists(p):
            with open(p) as f:
                sha = f.read().split()[0]
            out.setdefault(comp, {}).setdefault(ver, {})[arch] = sha
            if comp in ARCH_INDEPENDENT:
                out[comp][ver][ANY_ARCH] = sha
    return out


def write_checksums(base=None, versions=None):
    data = checksums_from_files(base, versions)
    path = checksums_path(base)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(render_checksums(data))
    os.replace(tmp, path)
    return path, data
