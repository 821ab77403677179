"""The one place where the artifact build pins versions.

`VERSIONS` is what the build produces.  The deploy's defaults (cluster/schema.py) should
agree with it; `python3 -m artifacts versions` prints it as JSON so they can be compared or
read, and the build writes the same data to <cache>/manifest.json.

`WANTED` is what the design asked for.  Where the Go module proxy reachable here does not
serve the wanted version, `SUBSTITUTIONS` says what was taken instead and why.
"""

ARCH = "amd64"

# What docs/design.md asks for.
WANTED = {
    "kubernetes": "v1.35.8",
    "etcd": "v3.6.14",
    "containerd": "2.2.3",
    "runc": "v1.3.3",
    "crictl": "v1.35.0",
    "cni_plugins": "v1.8.0",
    "calico": "v3.31.5",
    "kube_vip": "v1.0.3",
    "coredns": "v1.13.1",
    "pause": "3.10.1",
    "etcd_image": "3.6.6-0",
    # registry.k8s.io/e2e-test-images/agnhost: the end-to-end tests' workload (HTTP server and
    # pod-to-pod client), built from the Kubernetes module; its test/images/agnhost/VERSION.
    "agnhost": "2.59",
}

# What is built.
VERSIONS = {
    "kubernetes": "v1.35.8",
    "etcd": "v3.6.14",
    "containerd": "2.2.3",
    "runc": "v1.3.3",
    "crictl": "v1.36.0",
    "cni_plugins": "v1.8.0",
    "calico": "v3.31.0",
    "kube_vip": "v1.0.0",
    # Both must be what kubeadm v1.35.8 expects (cmd/kubeadm/app/constants); the build reads
    # the constants from the module and stops if they differ.
    "coredns": "v1.13.1",
    "pause": "3.10.1",
    # registry.k8s.io/etcd:<tag> for kubeadm's stacked etcd (etcd.topology: stacked); also
    # checked against kubeadm's DefaultEtcdVersion.  Built from etcd v3.6.6.
    "etcd_image": "3.6.6-0",
    # registry.k8s.io/e2e-test-images/agnhost: the end-to-end tests' workload (HTTP server and
    # pod-to-pod client), built from the Kubernetes module; its test/images/agnhost/VERSION.
    "agnhost": "2.59",
}

SUBSTITUTIONS = {
    "crictl": (
        "sigs.k8s.io/cri-tools v1.35.0 is not served by the module proxy (neither the tag nor a "
        "pseudo-version of its commit); v1.34.0 and v1.36.0 are. v1.34.0 requires "
        "k8s.io/cri-api and cri-client v0.34.0-rc.2, which the checksum database here does not "
        "know; v1.36.0 and all its dependencies verify, so v1.36.0 is taken."
    ),
    "calico": (
        "github.com/projectcalico/calico has no v3 module versions; the proxy serves a "
        "pseudo-version of the v3.31.0 tag's commit but none of v3.31.5's. v3.31.0 is taken."
    ),
    "kube_vip": (
        "github.com/kube-vip/kube-vip v1.0.3 is not served by the module proxy; v1.0.0 (same "
        "minor) and v1.2.1 are. v1.0.0 is taken."
    ),
}

# Go modules and the exact module versions built.  For a module whose tag cannot be a module
# version (Calico's v3 tags on a v0/v1 module path) the pseudo-version of the tag's commit is
# used; `tag` records which tag that commit carries.
MODULES = {
    "kubernetes": {"path": "k8s.io/kubernetes", "version": "v1.35.8"},
    "etcd_server": {"path": "go.etcd.io/etcd/server/v3", "version": "v3.6.14"},
    "etcd_etcdctl": {"path": "go.etcd.io/etcd/etcdctl/v3", "version": "v3.6.14"},
    "etcd_etcdutl": {"path": "go.etcd.io/etcd/etcdutl/v3", "version": "v3.6.14"},
    "etcd_root": {"path": "go.etcd.io/etcd/v3", "version": "v3.6.14"},
    "etcd_image_server": {"path": "go.etcd.io/etcd/server/v3", "version": "v3.6.6"},
    "etcd_image_etcdctl": {"path": "go.etcd.io/etcd/etcdctl/v3", "version": "v3.6.6"},
    "etcd_image_etcdutl": {"path": "go.etcd.io/etcd/etcdutl/v3", "version": "v3.6.6"},
    "etcd_image_root": {"path": "go.etcd.io/etcd/v3", "version": "v3.6.6"},
    "containerd": {"path": "github.com/containerd/containerd/v2", "version": "v2.2.3"},
    "runc": {"path": "github.com/opencontainers/runc", "version": "v1.3.3"},
    "crictl": {"path": "sigs.k8s.io/cri-tools", "version": "v1.36.0"},
    "cni_plugins": {"path": "github.com/containernetworking/plugins", "version": "v1.8.0"},
    "coredns": {"path": "github.com/coredns/coredns", "version": "v1.13.1"},
    "kube_vip": {"path": "github.com/kube-vip/kube-vip", "version": "v1.0.0"},
    "calico": {
        "path": "github.com/projectcalico/calico",
        "version": "v0.0.0-20251021213802-b1f3c43f8437",
        "tag": "v3.31.0",
    },
    # The monorepo's api/ folder is published as its own repository; this pseudo-version is
    # the commit that mirrors v3.31.0's api/ (every file compared equal).
    "calico_api": {
        "path": "github.com/projectcalico/api",
        "version": "v0.0.0-20251022175904-f2ab03771208",
        "tag": "v3.31.0",
    },
    "calico_lib_std": {
        "path": "github.com/projectcalico/calico/lib/std",
        "version": "v0.0.0-20251021213802-b1f3c43f8437",
        "tag": "v3.31.0",
    },
}

# go.sum lines for module versions the proxy serves but the checksum database reachable here
# does not know.  Each was checked once by comparing every file of the module zip with the
# git blob at the upstream tag (see docs/artifacts-notes.md); pinning them here means Go
# verifies the downloads against these hashes instead of trusting whatever is served.
PINNED_GO_SUMS = """\
github.com/kube-vip/kube-vip v1.0.0 h1:QvcGrTGziaBzM5tnhNWlsb9mI0tmF9gYh+VBfRDZ8w8=
github.com/kube-vip/kube-vip v1.0.0/go.mod h1:A1iU3+yXsQnveLkvTGO0RBAu9yHzchkCMNmDIyE5mRo=
github.com/projectcalico/calico v0.0.0-20251021213802-b1f3c43f8437 h1:PbLe6D0Yis8ce4F+o/Dmlrv4Her2ZN6ns8rmlZoFoEY=
github.com/projectcalico/calico v0.0.0-20251021213802-b1f3c43f8437/go.mod h1:HPgBjvttb5ao4PdYZJOQ2H9G71fnWOUM1CRAPPOUyc0=
github.com/projectcalico/api v0.0.0-20251022175904-f2ab03771208 h1:ltTWo/cCc/8pEpzmlzIjt6r2383x2XDPkuBcd/9kE3k=
github.com/projectcalico/api v0.0.0-20251022175904-f2ab03771208/go.mod h1:0+91//9pw8kMOyWwG1egVY9a9y43kVTLZfiEF1l5IQc=
github.com/projectcalico/calico/lib/std v0.0.0-20251021213802-b1f3c43f8437 h1:iLY3Uzt4pVX3jpS9Wt+mxakq1nfzN/32t6YZK9n7p/U=
github.com/projectcalico/calico/lib/std v0.0.0-20251021213802-b1f3c43f8437/go.mod h1:CjRtnCtQlXAxROAfoVztMfaBDWFqpuZmWM9EfBkcj8c=
"""

# runc v1.3.3 replaces github.com/opencontainers/selinux with an in-tree copy carrying the
# then-embargoed CVE-2025-52881 fix (internal/third_party/selinux, a nested module that module
# zips leave out).  The fix was released the next day as selinux v1.13.0, and runc v1.3.4
# dropped the copy for v1.13.1; the build maps the replace to v1.13.0.
RUNC_SELINUX = ("github.com/opencontainers/selinux", "v1.13.0")

# Debian suite of the root filesystem layer under kube-proxy and calico/node.
DEBIAN_SUITE = "bookworm"

# libbpf for calico-node's cgo build (felix/bpf/libbpf).  Calico v3.31.0 pins libbpf v1.4.6
# (LIBBPF_VERSION in metadata.mk) and needs >= 1.3 API (bpf_program__attach_tcx); bookworm
# itself has 1.1.2, bookworm-backports has 1.4.6.  The upstream tarball is taken from Debian's
# source package (apt-get source; apt checks it against the signed Sources index, the build
# also against this sha256) and built as upstream does: `make -C src BUILD_STATIC_ONLY=1`.
LIBBPF = {
    "version": "1.4.6",
    "source_package": "libbpf",
    "source_version": "1:1.4.6-1~bpo12+1",
    "suite": "bookworm-backports",
    "orig": "libbpf_1.4.6.orig.tar.gz",
    "orig_sha256": "d4cf3ee697d9bd959ad3c0f5c6757370a2559e54448761271e15a23c31c1082e",
}


def k8s_minor(version=None):
    """'v1.35.8' -> '35'."""
    return (version or VERSIONS["kubernetes"]).lstrip("v").split(".")[1]


def staging_version(version=None):
    """The published version of Kubernetes' staging modules: v1.35.8 -> v0.35.8."""
    v = (version or VERSIONS["kubernetes"]).lstrip("v").split(".")
    return "v0.%s.%s" % (v[1], v[2])
