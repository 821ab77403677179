"""The components: how each artifact is built, what it depends on, what it produces.

Every component has `inputs()` (everything that decides its outputs: versions, flags, the
recipe's own source) and `outputs()`; build.py skips a component whose stamp matches both.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import struct

from . import gomod, layout, oci, util, versions as V

K8S_TAGS = ("selinux", "notest", "grpcnotrace")
K8S_STATIC = ("kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
K8S_CGO = ("kubelet",)   # upstream builds kubelet with cgo (not in KUBE_STATIC_BINARIES)

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Ctx:
    def __init__(self, base=None):
        self.base = base or layout.root()
        self.work = os.path.join(self.base, "work")
        self.out = os.path.join(self.base, "build")
        self.logs = os.path.join(self.base, "logs")
        self.state = os.path.join(self.base, "state")
        self._env = None
        self.modinfo = {}

    @property
    def env(self):
        if self._env is None:
            self._env = gomod.go_env()
        return self._env

    def log(self, name):
        return os.path.join(self.logs, name + ".log")

    def module(self, key):
        """Download (or find in the module cache) one pinned module; returns go's JSON."""
        if key not in self.modinfo:
            m = V.MODULES[key]
            self.modinfo[key] = gomod.download(m["path"], m["version"], self.env, self.log("modules"),
                                               os.path.join(self.work, "download"))
        return self.modinfo[key]


_SOURCES = {}


def _module_source(mod):
    if mod.__name__ not in _SOURCES:
        with open(mod.__file__) as f:
            _SOURCES[mod.__name__] = f.read()
    return _SOURCES[mod.__name__]


def _class_source(name):
    """Source of a class of this module (one parse, not inspect's per-call AST walk)."""
    key = "class:" + name
    if key not in _SOURCES:
        import ast
        text = _module_source(__import__(__name__, fromlist=["x"]))
        for node in ast.parse(text).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                _SOURCES["class:" + node.name] = ast.get_source_segment(text, node)
    return _SOURCES[key]


class Component:
    name = ""
    deps = ()
    uses = ()        # helper modules whose source is part of the recipe

    def recipe_hash(self):
        h = hashlib.sha256(_class_source(type(self).__name__).encode())
        for mod in self.uses:
            h.update(_module_source(mod).encode())
        return h.hexdigest()

    def inputs(self, ctx):
        return {}

    def outputs(self, ctx):
        return []

    def build(self, ctx):
        raise NotImplementedError

    # helpers
    def outdir(self, ctx, *parts):
        return os.path.join(ctx.out, self.name, *parts)

    def workdir(self, ctx):
        return os.path.join(ctx.work, self.name)


def _publish(ctx, component, src):
    """Copy a built file to its place in the files tree with its .sha256."""
    dst = layout.file_path(component, ctx.base)
    util.install_file(src, dst, 0o755 if component not in ("calico_manifest",) else 0o644)
    util.write_sha256(dst)
    return dst


def _files_outputs(ctx, *components):
    res = []
    for c in components:
        p = layout.file_path(c, ctx.base)
        res += [p, p + ".sha256"]
    return res


def _epoch(iso):
    import datetime
    return int(datetime.datetime.strptime(iso.replace("Z", "+0000")[:19] + "+0000",
                                          "%Y-%m-%dT%H:%M:%S%z").timestamp())


# ------------------------------------------------------------------------------------------
class Kubernetes(Component):
    """kubeadm, kubelet, kubectl and the control-plane binaries from k8s.io/kubernetes, built
    through a wrapper module that maps the staging replaces to the published v0.X.Y modules."""
    name = "kubernetes"
    uses = (gomod,)

    def inputs(self, ctx):
        return {"module": V.MODULES["kubernetes"], "go": gomod.go_version(),
                "tags": K8S_TAGS, "static": K8S_STATIC, "cgo": K8S_CGO}

    def bindir(self, ctx):
        return self.outdir(ctx, V.VERSIONS["kubernetes"], "bin")

    def outputs(self, ctx):
        return [os.path.join(self.bindir(ctx), b) for b in K8S_STATIC + K8S_CGO] + \
            _files_outputs(ctx, "kubeadm", "kubelet", "kubectl")

    def ldflags(self, ctx):
        info = ctx.module("kubernetes")
        commit, when = gomod.origin(info)
        ver = V.MODULES["kubernetes"]["version"]
        major, minor = ver.lstrip("v").split(".")[:2]
        flags = ["-s", "-w"]
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
            for k, v in (("gitVersion", ver), ("gitMajor", major), ("gitMinor", minor),
                         ("gitCommit", commit), ("gitTreeState", "clean"), ("buildDate", when)):
                flags.append("-X %s.%s=%s" % (pkg, k, v))
        return " ".join(flags)

    def check_kubeadm_constants(self, ctx):
        """CoreDNS and pause must be the tags kubeadm of this version expects."""
        src = util.read_text(os.path.join(ctx.module("kubernetes")["Dir"], "cmd/kubeadm/app/constants/constants.go"))
        found = {k: re.search(r'\b%s\s*=\s*"([^"]+)"' % c, src).group(1)
                 for k, c in (("coredns", "CoreDNSVersion"), ("pause", "PauseVersion"),
                              ("etcd_image", "DefaultEtcdVersion"))}
        for k, v in found.items():
            if V.VERSIONS[k] != v:
                raise util.Failed("kubeadm %s expects %s %s but versions.py pins %s"
                                  % (V.VERSIONS["kubernetes"], k, v, V.VERSIONS[k]))
        return found

    def build(self, ctx):
        info = ctx.module("kubernetes")
        self.check_kubeadm_constants(ctx)
        up = util.read_text(info["GoMod"])
        staging = V.staging_version()
        local = {r["old"]: (r["old"], staging) for r in gomod.parse_gomod(up)["replace"]
                 if r["new"].startswith("./staging/")}
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod(
            "kubernetes", [("k8s.io/kubernetes", V.MODULES["kubernetes"]["version"])], up, local))
        bindir = self.bindir(ctx)
        os.makedirs(bindir, exist_ok=True)
        ld = self.ldflags(ctx)
        for b in K8S_STATIC + K8S_CGO:
            util.say(self.name, "go build %s" % b)
            gomod.build(wd, os.path.join(bindir, b), ["k8s.io/kubernetes/cmd/" + b], ctx.env,
                        ctx.log(self.name), self.name, tags=K8S_TAGS, ldflags=ld, cgo=b in K8S_CGO)
        for b in ("kubeadm", "kubelet", "kubectl"):
            _publish(ctx, b, os.path.join(bindir, b))


# ------------------------------------------------------------------------------------------
def _build_etcd(ctx, comp, prefix, bindir, log):
    """etcd, etcdctl, etcdutl of one version from the nested modules (MODULES[prefix_*]), as
    scripts/build_lib.sh: cgo off, -trimpath, GitSHA stamped.  Returns (root module info,
    [server, etcdctl, etcdutl] infos, commit time)."""
    root = ctx.module(prefix + "_root")
    commit, when = gomod.origin(root)
    keys = [prefix + s for s in ("_server", "_etcdctl", "_etcdutl")]
    mods = [ctx.module(k) for k in keys]
    up = util.read_text(mods[0]["GoMod"])
    ver = V.MODULES[keys[0]]["version"]
    # The nested modules replace each other with ../ paths: use the published versions.
    # Replaces to ./FORBIDDEN_DEPENDENCY are guards against depending on those modules.
    local = {r["old"]: None if "FORBIDDEN" in r["new"] else (r["old"], ver)
             for r in gomod.parse_gomod(up)["replace"]}
    wd = os.path.join(ctx.work, comp.name)
    reqs = [(V.MODULES[k]["path"], V.MODULES[k]["version"]) for k in keys]
    gomod.prepare_wrapper(wd, gomod.wrapper_gomod(comp.name, reqs, up, local))
    gomod.clean_dir(bindir)
    ld = "-s -w -X=go.etcd.io/etcd/api/v3/version.GitSHA=%s" % commit[:7]
    for out, k in zip(("etcd", "etcdctl", "etcdutl"), keys):
        util.say(comp.name, "go build %s %s" % (out, ver))
        gomod.build(wd, os.path.join(bindir, out), [V.MODULES[k]["path"]], ctx.env, log, comp.name, ldflags=ld)
    return root, mods, when


class Etcd(Component):
    """The etcd release tarball etcd-vX-linux-amd64/{etcd,etcdctl,etcdutl,README*}."""
    name = "etcd"
    uses = (gomod,)

    def inputs(self, ctx):
        return {"modules": [V.MODULES[k] for k in ("etcd_root", "etcd_server", "etcd_etcdctl", "etcd_etcdutl")],
                "go": gomod.go_version(), "builder": _class_source("_build_etcd")}

    def outputs(self, ctx):
        return _files_outputs(ctx, "etcd")

    def build(self, ctx):
        ver = V.VERSIONS["etcd"]
        top = "etcd-%s-linux-%s" % (ver, V.ARCH)
        bindir = self.outdir(ctx, ver, top)
        root, mods, when = _build_etcd(ctx, self, "etcd", bindir, ctx.log(self.name))
        docs = [("README.md", os.path.join(root["Dir"], "README.md")),
                ("README-etcdctl.md", os.path.join(mods[1]["Dir"], "README.md")),
                ("README-etcdutl.md", os.path.join(mods[2]["Dir"], "README.md"))]
        entries = [(top, None, 0o755)]
        entries += [("%s/%s" % (top, b), os.path.join(bindir, b), 0o755) for b in ("etcd", "etcdctl", "etcdutl")]
        entries += [("%s/%s" % (top, n), p, 0o644) for n, p in docs if os.path.exists(p)]
        tgz = os.path.join(self.outdir(ctx, ver), top + ".tar.gz")
        util.write_tgz(tgz, entries, mtime=_epoch(when))
        _publish(ctx, "etcd", tgz)


# ------------------------------------------------------------------------------------------
class Containerd(Component):
    """containerd release layout bin/{containerd,containerd-shim-runc-v2,ctr}: containerd and
    ctr with cgo (as upstream's non-static release), the shim static without cgo."""
    name = "containerd"
    uses = (gomod,)

    def inputs(self, ctx):
        return {"module": V.MODULES["containerd"], "go": gomod.go_version()}

    def outputs(self, ctx):
        return _files_outputs(ctx, "containerd")

    def build(self, ctx):
        info = ctx.module("containerd")
        commit, when = gomod.origin(info)
        mv = V.MODULES["containerd"]["version"]
        pkg = "github.com/containerd/containerd/v2"
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("containerd", [(pkg, mv)], util.read_text(info["GoMod"]), {}))
        bindir = self.outdir(ctx, mv, "bin")
        gomod.clean_dir(bindir)
        ver_ld = "-X %s/version.Version=%s -X %s/version.Revision=%s -X %s/version.Package=%s" % (
            pkg, mv, pkg, commit, pkg, pkg)
        tags = ("urfave_cli_no_docs",)
        for b in ("containerd", "ctr"):
            util.say(self.name, "go build %s" % b)
            gomod.build(wd, os.path.join(bindir, b), [pkg + "/cmd/" + b], ctx.env, ctx.log(self.name), self.name,
                        tags=tags, ldflags=ver_ld, cgo=True, extra=("-buildmode=pie",))
        util.say(self.name, "go build containerd-shim-runc-v2")
        gomod.build(wd, os.path.join(bindir, "containerd-shim-runc-v2"), [pkg + "/cmd/containerd-shim-runc-v2"],
                    ctx.env, ctx.log(self.name), self.name, tags=tags + ("no_grpc",),
                    ldflags=ver_ld + ' -extldflags "-static"', cgo=False)
        entries = [("bin", None, 0o755)] + [("bin/" + b, os.path.join(bindir, b), 0o755)
                                           for b in ("containerd", "containerd-shim-runc-v2", "ctr")]
        tgz = os.path.join(self.outdir(ctx, mv), "containerd-%s-linux-%s.tar.gz" % (V.VERSIONS["containerd"], V.ARCH))
        util.write_tgz(tgz, entries, mtime=_epoch(when))
        _publish(ctx, "containerd", tgz)


# ------------------------------------------------------------------------------------------
class Runc(Component):
    """runc as upstream's `make static`: cgo, libseccomp (Debian's libseccomp-dev, static
    archive), static PIE."""
    name = "runc"
    uses = (gomod,)

    def inputs(self, ctx):
        seccomp = "/usr/lib/x86_64-linux-gnu/libseccomp.a"
        return {"module": V.MODULES["runc"], "go": gomod.go_version(), "selinux": V.RUNC_SELINUX,
                "libseccomp": util.sha256_file(seccomp) if os.path.exists(seccomp) else None}

    def outputs(self, ctx):
        return _files_outputs(ctx, "runc")

    def build(self, ctx):
        if not os.path.exists("/usr/lib/x86_64-linux-gnu/libseccomp.a"):
            raise util.Failed("runc needs Debian's libseccomp-dev (apt-get install libseccomp-dev)")
        info = ctx.module("runc")
        commit, _ = gomod.origin(info)
        mv = V.MODULES["runc"]["version"]
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("runc", [("github.com/opencontainers/runc", mv)],
                                                      util.read_text(info["GoMod"]),
                                                      {"github.com/opencontainers/selinux": V.RUNC_SELINUX}))
        out = self.outdir(ctx, mv, "runc.%s" % V.ARCH)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        util.say(self.name, "go build runc (cgo, seccomp, static-pie)")
        gomod.build(wd, out, ["github.com/opencontainers/runc"], ctx.env, ctx.log(self.name), self.name,
                    tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
                    ldflags="-X main.gitCommit=%s-0-g%s -linkmode external -extldflags -static-pie" % (mv, commit[:8]),
                    cgo=True, extra=("-buildmode=pie",))
        _publish(ctx, "runc", out)


# ------------------------------------------------------------------------------------------
class Crictl(Component):
    name = "crictl"
    uses = (gomod,)

    def inputs(self, ctx):
        return {"module": V.MODULES["crictl"], "go": gomod.go_version()}

    def outputs(self, ctx):
        return _files_outputs(ctx, "crictl")

    def build(self, ctx):
        info = ctx.module("crictl")
        _, when = gomod.origin(info)
        mv = V.MODULES["crictl"]["version"]
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("crictl", [("sigs.k8s.io/cri-tools", mv)],
                                                      util.read_text(info["GoMod"]), {}))
        out = self.outdir(ctx, mv, "crictl")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        util.say(self.name, "go build crictl")
        gomod.build(wd, out, ["sigs.k8s.io/cri-tools/cmd/crictl"], ctx.env, ctx.log(self.name), self.name,
                    ldflags="-X sigs.k8s.io/cri-tools/pkg/version.Version=%s" % mv)
        tgz = os.path.join(self.outdir(ctx, mv), "crictl-%s-linux-%s.tar.gz" % (mv, V.ARCH))
        util.write_tgz(tgz, [("crictl", out, 0o755)], mtime=_epoch(when))
        _publish(ctx, "crictl", tgz)


# ------------------------------------------------------------------------------------------
class CniPlugins(Component):
    """Every Linux plugin under plugins/{meta,main,ipam} (as build_linux.sh), static."""
    name = "cni_plugins"
    uses = (gomod,)

    def inputs(self, ctx):
        return {"module": V.MODULES["cni_plugins"], "go": gomod.go_version()}

    def bindir(self, ctx):
        return self.outdir(ctx, V.VERSIONS["cni_plugins"], "bin")

    def outputs(self, ctx):
        return _files_outputs(ctx, "cni_plugins") + [os.path.join(self.bindir(ctx), "portmap")]

    def build(self, ctx):
        info = ctx.module("cni_plugins")
        _, when = gomod.origin(info)
        mv = V.MODULES["cni_plugins"]["version"]
        mp = "github.com/containernetworking/plugins"
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("cni-plugins", [(mp, mv)], util.read_text(info["GoMod"]), {}))
        plugins = []
        for kind in ("meta", "main", "ipam"):
            for d in sorted(glob.glob(os.path.join(info["Dir"], "plugins", kind, "*"))):
                if os.path.isdir(d) and os.path.basename(d) != "windows":
                    plugins.append((os.path.basename(d), "%s/plugins/%s/%s" % (mp, kind, os.path.basename(d))))
        bindir = self.bindir(ctx)
        gomod.clean_dir(bindir)
        ld = "-extldflags -static -X %s/pkg/utils/buildversion.BuildVersion=%s" % (mp, mv)
        util.say(self.name, "go build %d plugins" % len(plugins))
        # One go build per plugin (one -o dir for all would also work; this keeps names exact).
        for n, pkg in plugins:
            gomod.build(wd, os.path.join(bindir, n), [pkg], ctx.env, ctx.log(self.name), self.name, ldflags=ld)
        entries = [(".", None, 0o755)] + [("./" + n, os.path.join(bindir, n), 0o755) for n, _ in plugins]
        for doc in ("LICENSE", "README.md"):
            if os.path.exists(os.path.join(info["Dir"], doc)):
                entries.append(("./" + doc, os.path.join(info["Dir"], doc), 0o644))
        tgz = os.path.join(self.outdir(ctx, mv), "cni-plugins-linux-%s-%s.tgz" % (V.ARCH, mv))
        util.write_tgz(tgz, entries, mtime=_epoch(when))
        _publish(ctx, "cni_plugins", tgz)


# ------------------------------------------------------------------------------------------
# Base layers shared by images.
def _layer_blob(ctx, name):
    d = os.path.join(ctx.out, "layers")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name + ".tar.gz")


def _save_layer(ctx, name, layer):
    blob = _layer_blob(ctx, name)
    digest, size, diff_id = layer.write(blob + ".tmp")
    os.replace(blob + ".tmp", blob)
    util.write_text(blob + ".json", json.dumps({"digest": digest, "size": size, "diff_id": diff_id}))
    return (blob, digest, size, diff_id)


def _load_layer(ctx, name):
    blob = _layer_blob(ctx, name)
    with open(blob + ".json") as f:
        m = json.load(f)
    return (blob, m["digest"], m["size"], m["diff_id"])


CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class StaticBase(Component):
    """The layer under static Go binaries, like distroless/static: root/nobody/nonroot users,
    CA bundle (Debian's ca-certificates on this machine), nsswitch, /tmp."""
    name = "base-static"
    uses = (oci,)

    def inputs(self, ctx):
        return {"ca": util.sha256_file(CA_BUNDLE)}

    def outputs(self, ctx):
        b = _layer_blob(ctx, self.name)
        return [b, b + ".json"]

    def build(self, ctx):
        l = oci.Layer()
        l.add_bytes("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n"
                                  b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                                  b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
        l.add_bytes("etc/group", b"root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n")
        l.add_bytes("etc/nsswitch.conf", b"hosts: files dns\n")
        l.add_file("etc/ssl/certs/ca-certificates.crt", CA_BUNDLE, mode=0o644)
        l.add_dir("tmp", mode=0o1777)
        l.add_dir("root", mode=0o700)
        l.add_dir("home/nonroot", mode=0o700, uid=65532, gid=65532)
        l.add_dir("var/run")
        _save_layer(ctx, self.name, l)


DEBIAN_PACKAGES = ("iptables", "nftables", "ipset", "conntrack", "iproute2", "kmod", "runit", "procps",
                   "net-tools", "ca-certificates", "netbase", "ebtables",
                   "libpcap0.8")   # calico-node (cgo) links libpcap (gopacket/pcap), as upstream's image


def debian_mirror():
    """The Debian mirror this machine's apt uses (never hard-coded)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        text = util.read_text(path)
        for block in text.split("\n\n"):
            if re.search(r"^Suites:.*\b%s\b" % V.DEBIAN_SUITE, block, re.M) and "debian-security" not in block:
                m = re.search(r"^URIs:\s*(\S+)", block, re.M)
                if m:
                    return m.group(1)
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            for line in util.read_text(path).splitlines():
                p = line.split()
                if len(p) >= 3 and p[0] == "deb" and "security" not in p[1]:
                    return p[1] if not p[1].startswith("[") else p[2]
    raise util.Failed("no Debian mirror found in the apt sources")


class DebianBase(Component):
    """A Debian root filesystem (debootstrap minbase) with the network tools kube-proxy and
    calico/node need: iptables (legacy and nft), nftables, ipset, conntrack, iproute2, kmod,
    runit.  One layer, shared by both images."""
    name = "base-debian"
    uses = (oci,)

    def inputs(self, ctx):
        return {"suite": V.DEBIAN_SUITE, "packages": DEBIAN_PACKAGES}

    def outputs(self, ctx):
        b = _layer_blob(ctx, self.name)
        return [b, b + ".json"]

    def build(self, ctx):
        if not shutil.which("debootstrap"):
            raise util.Failed("debootstrap is needed (apt-get install debootstrap)")
        rootfs = os.path.join(self.workdir(ctx), "rootfs")
        if os.path.isdir(rootfs):
            shutil.rmtree(rootfs)
        os.makedirs(os.path.dirname(rootfs), exist_ok=True)
        util.say(self.name, "debootstrap %s (minbase + %d packages)" % (V.DEBIAN_SUITE, len(DEBIAN_PACKAGES)))
        util.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(DEBIAN_PACKAGES),
                  V.DEBIAN_SUITE, rootfs, debian_mirror()], self.name, log=ctx.log(self.name))
        # Slim it: no package caches, docs, man pages or locales in an image.
        for sub in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
                    "usr/share/locale", "var/log", "usr/share/lintian"):
            p = os.path.join(rootfs, sub)
            if os.path.isdir(p):
                shutil.rmtree(p)
                os.makedirs(p)
        for p in ("etc/machine-id", "etc/hostname", "etc/resolv.conf"):
            fp = os.path.join(rootfs, p)
            if os.path.lexists(fp):
                os.unlink(fp)
        # /dev, /proc, /sys come from the runtime.
        for p in ("dev", "proc", "sys"):
            fp = os.path.join(rootfs, p)
            if os.path.isdir(fp):
                shutil.rmtree(fp)
            os.makedirs(fp)
        util.say(self.name, "writing the layer")
        l = oci.Layer()
        l.add_tree("", rootfs)
        _save_layer(ctx, self.name, l)
        shutil.rmtree(rootfs)


# ------------------------------------------------------------------------------------------
def _image(ctx, ref, layers, **kw):
    path = layout.archive_path(ref, ctx.base)
    util.say("image", "%s -> %s" % (ref, os.path.relpath(path, ctx.base)))
    return oci.write_image(path, ref, layers, **kw)


def _binary_layer(ctx, name, files, mtime=0):
    """A layer holding a few files: [(path in image, source, mode, xattrs or None)]."""
    l = oci.Layer(mtime=mtime)
    for path, src, mode, xattrs in files:
        if src is None:
            l.add_dir(path, mode=mode)
        elif isinstance(src, bytes):
            l.add_bytes(path, src, mode=mode, xattrs=xattrs)
        else:
            l.add_file(path, src, mode=mode, xattrs=xattrs)
    return _save_layer(ctx, name, l)


def cap_net_bind_service_xattr():
    """security.capability value of `setcap cap_net_bind_service=+ep` (VFS_CAP_REVISION_2)."""
    return struct.pack("<IIIII", 0x02000000 | 0x1, 1 << 10, 0, 0, 0)


def _check_not_shadowing(layer, lower, allow=()):
    """Refuse a layer whose directories would replace symlinks of the layer below (e.g. a
    "bin/" directory over Debian's merged-/usr bin -> usr/bin link hides /bin/sh)."""
    import tarfile
    with tarfile.open(lower[0]) as t:
        links = {m.name.rstrip("/") for m in t if m.issym()}
    bad = [n for n in layer.names() if n in links and layer.entries[n][0].isdir() and n not in allow]
    if bad:
        raise util.Failed("layer would hide symlinks of its base: %s" % ", ".join(bad))


class KubernetesImages(Component):
    """registry.k8s.io/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy}:
    the binary at /usr/local/bin/NAME as upstream's server-image; kube-proxy on the Debian
    network base (upstream: distroless-iptables), the others on the static base."""
    name = "kubernetes-images"
    deps = ("kubernetes", "base-static", "base-debian")
    uses = (oci,)

    NAMES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")

    def inputs(self, ctx):
        return {"version": V.VERSIONS["kubernetes"]}

    def outputs(self, ctx):
        refs = layout.image_refs()
        return [layout.archive_path(refs[n], ctx.base) for n in self.NAMES]

    def build(self, ctx):
        refs = layout.image_refs()
        bindir = Kubernetes().bindir(ctx)
        static, debian = _load_layer(ctx, "base-static"), _load_layer(ctx, "base-debian")
        for n in self.NAMES:
            top = _binary_layer(ctx, "k8s-" + n, [("usr/local/bin/" + n, os.path.join(bindir, n), 0o755, None)])
            base = debian if n == "kube-proxy" else static
            if base is debian:
                l = oci.Layer()
                l.add_file("usr/local/bin/" + n, os.path.join(bindir, n), mode=0o755)
                _check_not_shadowing(l, debian)
            _image(ctx, refs[n], [base, top], entrypoint=["/usr/local/bin/" + n],
                   labels={"org.opencontainers.image.version": V.VERSIONS["kubernetes"]})


class Pause(Component):
    """registry.k8s.io/pause: build/pause/linux/pause.c from the k8s.io/kubernetes module,
    `gcc -Os -Wall -Werror -static` as upstream, in an otherwise empty image."""
    name = "pause"
    uses = (oci,)

    def inputs(self, ctx):
        return {"version": V.VERSIONS["pause"], "kubernetes": V.MODULES["kubernetes"],
                "gcc": util.capture(["gcc", "--version"]).splitlines()[0]}

    def outputs(self, ctx):
        return [layout.archive_path(layout.image_refs()["pause"], ctx.base)]

    def build(self, ctx):
        src = os.path.join(ctx.module("kubernetes")["Dir"], "build/pause/linux/pause.c")
        out = self.outdir(ctx, V.VERSIONS["pause"], "pause")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        util.run(["gcc", "-Os", "-Wall", "-Werror", "-static",
                  "-DVERSION=v%s-%s" % (V.VERSIONS["pause"], V.VERSIONS["kubernetes"]), "-o", out, src],
                 self.name, log=ctx.log(self.name))
        util.run(["strip", out], self.name, log=ctx.log(self.name))
        top = _binary_layer(ctx, "pause", [("pause", out, 0o755, None)])
        _image(ctx, layout.image_refs()["pause"], [top], entrypoint=["/pause"], user="65535:65535")


class EtcdImage(Component):
    """registry.k8s.io/etcd:<kubeadm's DefaultEtcdVersion> for the stacked topology: etcd,
    etcdctl, etcdutl of that etcd version in /usr/local/bin (kubeadm's static pod runs
    `etcd ...`), on the static base.  Upstream's image also carries a migration helper and
    older etcd versions for upgrades; not here."""
    name = "etcd-image"
    deps = ("base-static",)
    uses = (gomod, oci)

    def inputs(self, ctx):
        return {"tag": V.VERSIONS["etcd_image"], "go": gomod.go_version(),
                "modules": [V.MODULES[k] for k in ("etcd_image_root", "etcd_image_server", "etcd_image_etcdctl",
                                                   "etcd_image_etcdutl")],
                "builder": _class_source("_build_etcd")}

    def outputs(self, ctx):
        return [layout.archive_path(layout.image_refs()["etcd"], ctx.base)]

    def build(self, ctx):
        tag = V.VERSIONS["etcd_image"]
        if V.MODULES["etcd_image_server"]["version"] != "v" + tag.split("-")[0]:
            raise util.Failed("etcd image %s but modules at %s" % (tag, V.MODULES["etcd_image_server"]["version"]))
        bindir = self.outdir(ctx, tag, "bin")
        _, _, when = _build_etcd(ctx, self, "etcd_image", bindir, ctx.log(self.name))
        top = _binary_layer(ctx, "etcd-image", [("usr/local/bin/" + b, os.path.join(bindir, b), 0o755, None)
                                                for b in ("etcd", "etcdctl", "etcdutl")] +
                            [("var/lib/etcd", None, 0o700, None)], mtime=_epoch(when))
        _image(ctx, layout.image_refs()["etcd"], [_load_layer(ctx, "base-static"), top],
               env=[PATH_ENV, "ETCD_UNSUPPORTED_ARCH="], exposed_ports=["2379/tcp", "2380/tcp"],
               labels={"org.opencontainers.image.version": tag})


class Coredns(Component):
    """registry.k8s.io/coredns/coredns: static coredns (tag grpcnotrace), /coredns with
    cap_net_bind_service=+ep, user nonroot, as upstream's Dockerfile."""
    name = "coredns"
    deps = ("base-static",)
    uses = (gomod, oci)

    def inputs(self, ctx):
        return {"module": V.MODULES["coredns"], "go": gomod.go_version()}

    def outputs(self, ctx):
        return [layout.archive_path(layout.image_refs()["coredns"], ctx.base)]

    def build(self, ctx):
        info = ctx.module("coredns")
        commit, _ = gomod.origin(info)
        mv = V.MODULES["coredns"]["version"]
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("coredns", [("github.com/coredns/coredns", mv)],
                                                      util.read_text(info["GoMod"]), {}))
        out = self.outdir(ctx, mv, "coredns")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        util.say(self.name, "go build coredns")
        gomod.build(wd, out, ["github.com/coredns/coredns"], ctx.env, ctx.log(self.name), self.name,
                    tags=("grpcnotrace",),
                    ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=%s" % commit[:7])
        top = _binary_layer(ctx, "coredns", [("coredns", out, 0o755,
                                              {"security.capability": cap_net_bind_service_xattr()})])
        _image(ctx, layout.image_refs()["coredns"], [_load_layer(ctx, "base-static"), top],
               entrypoint=["/coredns"], user="nonroot:nonroot", exposed_ports=["53/tcp", "53/udp"])


class Agnhost(Component):
    """registry.k8s.io/e2e-test-images/agnhost: test/images/agnhost from the k8s.io/kubernetes
    module (cgo off) on the static base, as upstream's image runs it: `agnhost netexec` serves
    HTTP and dials other pods. Only the end-to-end tests use it."""
    name = "agnhost"
    deps = ("kubernetes", "base-static")
    uses = (gomod, oci)

    def inputs(self, ctx):
        return {"version": V.VERSIONS["agnhost"], "kubernetes": V.MODULES["kubernetes"], "go": gomod.go_version()}

    def outputs(self, ctx):
        return [layout.archive_path(layout.image_refs()["agnhost"], ctx.base)]

    def build(self, ctx):
        source = os.path.join(ctx.module("kubernetes")["Dir"], "test/images/agnhost")
        found = util.read_text(os.path.join(source, "VERSION")).strip()
        if found != V.VERSIONS["agnhost"]:
            raise util.Failed("kubernetes %s has agnhost %s but versions.py pins %s"
                              % (V.VERSIONS["kubernetes"], found, V.VERSIONS["agnhost"]))
        out = self.outdir(ctx, found, "agnhost")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        util.say(self.name, "go build agnhost")
        # the Kubernetes component's wrapper module already maps the staging modules
        gomod.build(Kubernetes().workdir(ctx), out, ["k8s.io/kubernetes/test/images/agnhost"], ctx.env,
                    ctx.log(self.name), self.name, ldflags="-s -w")
        top = _binary_layer(ctx, "agnhost", [("agnhost", out, 0o755, None)])
        _image(ctx, layout.image_refs()["agnhost"], [_load_layer(ctx, "base-static"), top],
               entrypoint=["/agnhost"])


class KubeVip(Component):
    """ghcr.io/kube-vip/kube-vip: static /kube-vip with the CA bundle (upstream: FROM scratch)."""
    name = "kube-vip"
    deps = ("base-static",)
    uses = (gomod, oci)

    def inputs(self, ctx):
        return {"module": V.MODULES["kube_vip"], "go": gomod.go_version()}

    def outputs(self, ctx):
        return [layout.archive_path(layout.image_refs()["kube-vip"], ctx.base)]

    def build(self, ctx):
        info = ctx.module("kube_vip")
        commit, _ = gomod.origin(info)
        mv = V.MODULES["kube_vip"]["version"]
        wd = self.workdir(ctx)
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("kube-vip", [("github.com/kube-vip/kube-vip", mv)],
                                                      util.read_text(info["GoMod"]), {}))
        out = self.outdir(ctx, mv, "kube-vip")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        util.say(self.name, "go build kube-vip")
        gomod.build(wd, out, ["github.com/kube-vip/kube-vip"], ctx.env, ctx.log(self.name), self.name,
                    ldflags="-s -w -X=main.Version=%s -X=main.Build=%s -extldflags -static" % (mv, commit[:7]))
        top = _binary_layer(ctx, "kube-vip", [("kube-vip", out, 0o755, None)])
        _image(ctx, layout.image_refs()["kube-vip"], [_load_layer(ctx, "base-static"), top],
               entrypoint=["/kube-vip"])


# ------------------------------------------------------------------------------------------
class Libbpf(Component):
    """libbpf (static archive + headers) for calico-node's cgo build, as Calico builds it:
    the upstream v1.4.6 tarball, `make -C src BUILD_STATIC_ONLY=1`.  The tarball comes from
    Debian's source package (bookworm-backports), fetched with apt through a private apt
    configuration (deb-src line, own lists and cache) so the machine's apt stays untouched;
    Debian's patches are not applied (upstream builds the plain tag)."""
    name = "libbpf"

    def inputs(self, ctx):
        return {"libbpf": V.LIBBPF, "suite": V.DEBIAN_SUITE,
                "gcc": util.capture(["gcc", "--version"]).splitlines()[0]}

    def srcdir(self, ctx):
        return self.outdir(ctx, V.LIBBPF["version"], "libbpf-" + V.LIBBPF["version"])

    def libdir(self, ctx):
        return self.outdir(ctx, V.LIBBPF["version"], "lib")

    def cgo_env(self, ctx):
        """CGO_CFLAGS/CGO_LDFLAGS for felix/bpf/libbpf (env flags come before the package's
        #cgo flags, so its `#include "libbpf.h"`/`<bpf.h>`/"str_error.h" find libbpf's src/,
        as with upstream's -I of the cloned libbpf; it adds -lbpf -lelf -lz itself)."""
        src = self.srcdir(ctx)
        return {"CGO_CFLAGS": "-I%s -I%s" % (os.path.join(src, "src"), os.path.join(src, "include", "uapi")),
                "CGO_LDFLAGS": "-L%s" % self.libdir(ctx)}

    def outputs(self, ctx):
        src = self.srcdir(ctx)
        return [os.path.join(self.libdir(ctx), "libbpf.a"), os.path.join(src, "src", "libbpf.h"),
                os.path.join(src, "src", "str_error.h"), os.path.join(src, "include", "uapi", "linux", "bpf.h")]

    def build(self, ctx):
        import tarfile
        for hdr in ("/usr/include/libelf.h", "/usr/include/zlib.h"):
            if not os.path.exists(hdr):
                raise util.Failed("libbpf needs libelf-dev and zlib1g-dev (apt-get install libelf-dev zlib1g-dev)")
        L = V.LIBBPF
        wd = self.workdir(ctx)
        apt = os.path.join(wd, "apt")
        if os.path.isdir(apt):
            shutil.rmtree(apt)
        for d in ("lists/partial", "cache/archives/partial", "src"):
            os.makedirs(os.path.join(apt, d))
        util.write_text(os.path.join(apt, "sources.list"),
                        "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n"
                        % (debian_mirror(), L["suite"]))
        opts = ["-o", "Dir::Etc::SourceList=" + os.path.join(apt, "sources.list"),
                "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", "Dir::State::Lists=" + os.path.join(apt, "lists"),
                "-o", "Dir::Cache=" + os.path.join(apt, "cache"),
                "-o", "APT::Sandbox::User=root"]
        util.say(self.name, "apt-get source %s=%s (%s)" % (L["source_package"], L["source_version"], L["suite"]))
        util.run(["apt-get"] + opts + ["update"], self.name, log=ctx.log(self.name))
        util.run(["apt-get"] + opts + ["source", "--download-only", "--tar-only",
                                       "%s=%s" % (L["source_package"], L["source_version"].split(":")[-1])],
                 self.name, log=ctx.log(self.name), cwd=os.path.join(apt, "src"))
        orig = os.path.join(apt, "src", L["orig"])
        got = util.sha256_file(orig)
        if got != L["orig_sha256"]:
            raise util.Failed("%s: sha256 %s, pinned %s" % (L["orig"], got, L["orig_sha256"]))
        top = self.outdir(ctx, L["version"])
        gomod.clean_dir(top)
        with tarfile.open(orig) as t:
            t.extractall(top, filter="data")
        if not os.path.isdir(self.srcdir(ctx)):
            raise util.Failed("%s has no libbpf-%s/ directory" % (L["orig"], L["version"]))
        lib = self.libdir(ctx)
        os.makedirs(lib)
        util.say(self.name, "make -C src BUILD_STATIC_ONLY=1 (libbpf %s)" % L["version"])
        util.run(["make", "-j%d" % (os.cpu_count() or 2), "-C", os.path.join(self.srcdir(ctx), "src"),
                  "BUILD_STATIC_ONLY=1", "OBJDIR=" + lib], self.name, log=ctx.log(self.name))
        shutil.rmtree(apt)


# ------------------------------------------------------------------------------------------
CALICO_BINS = {
    "calico": "cni-plugin/cmd/calico",
    "install": "cni-plugin/cmd/install",
    "calico-node": "node/cmd/calico-node",
    "mountns": "node/cmd/mountns",
    "kube-controllers": "kube-controllers/cmd/kube-controllers",
    "check-status": "kube-controllers/cmd/check-status",
    "wrapper": "kube-controllers/cmd/wrapper",
}
CALICO_CNI_FROM_PLUGINS = ("bandwidth", "host-local", "loopback", "portmap", "tuning")
CALICO_CGO = ("calico-node",)   # upstream: build_cgo_binary with libbpf; the rest cgo off here


class Calico(Component):
    """Calico from the monorepo module at the tag's pseudo-version: calico/cni, calico/node
    (VXLAN/iptables/nftables dataplane; no BIRD, no BPF programs) and calico/kube-controllers,
    plus manifests/calico.yaml from the same module.  calico-node is built as upstream: cgo
    against a static libbpf (CALICO_CGO), libelf, zlib and glibc dynamic (all in base-debian).
    With cgo off felix/bpf/libbpf is a stub whose OpenObject panics, and Felix calls it at
    start even with BPF disabled (int_dataplane.go cleans up "leftover BPF state")."""
    name = "calico"
    deps = ("base-static", "base-debian", "cni_plugins", "libbpf")
    uses = (gomod, oci)

    def inputs(self, ctx):
        return {"modules": [V.MODULES[k] for k in ("calico", "calico_api", "calico_lib_std")],
                "go": gomod.go_version(), "bins": CALICO_BINS, "cni": CALICO_CNI_FROM_PLUGINS,
                "cgo": CALICO_CGO, "libbpf": V.LIBBPF}

    def outputs(self, ctx):
        refs = layout.image_refs()
        return [layout.archive_path(refs[k], ctx.base) for k in ("calico-cni", "calico-node", "calico-kube-controllers")] \
            + _files_outputs(ctx, "calico_manifest")

    def build(self, ctx):
        info = ctx.module("calico")
        commit, when = gomod.origin(info)
        ctx.module("calico_api")
        ctx.module("calico_lib_std")
        mv = V.MODULES["calico"]["version"]
        wd = self.workdir(ctx)
        # lib/httpmachinery is a nested module the proxy does not serve at this commit; only
        # whisker-backend imports it, which is not built.  It still has to exist for the module
        # graph, so it becomes an empty local module: if anything built here imported it, the
        # build would fail, never silently use a stand-in.
        stub = os.path.join(wd, "httpmachinery-unused")
        util.write_text(os.path.join(stub, "go.mod"),
                        "// Placeholder for the module graph only: no package of it is built.\n"
                        "module github.com/projectcalico/calico/lib/httpmachinery\n\ngo 1.24\n")
        local = {
            "github.com/projectcalico/api": (V.MODULES["calico_api"]["path"], V.MODULES["calico_api"]["version"]),
            "github.com/projectcalico/calico/lib/std": (V.MODULES["calico_lib_std"]["path"],
                                                        V.MODULES["calico_lib_std"]["version"]),
            "github.com/projectcalico/calico/lib/httpmachinery": "./httpmachinery-unused",
        }
        gomod.prepare_wrapper(wd, gomod.wrapper_gomod("calico", [(V.MODULES["calico"]["path"], mv)],
                                                      util.read_text(info["GoMod"]), local))
        tag = V.MODULES["calico"]["tag"]
        bindir = self.outdir(ctx, tag, "bin")
        gomod.clean_dir(bindir)
        ld = ("-s -w -X github.com/projectcalico/calico/pkg/buildinfo.Version=%s "
              "-X github.com/projectcalico/calico/pkg/buildinfo.BuildDate=%s "
              "-X github.com/projectcalico/calico/pkg/buildinfo.GitRevision=%s" % (tag, when, commit))
        for b, pkg in CALICO_BINS.items():
            cgo = b in CALICO_CGO
            util.say(self.name, "go build %s%s" % (b, " (cgo, libbpf %s)" % V.LIBBPF["version"] if cgo else ""))
            env = dict(ctx.env, **Libbpf().cgo_env(ctx)) if cgo else ctx.env
            gomod.build(wd, os.path.join(bindir, b), ["github.com/projectcalico/calico/" + pkg], env,
                        ctx.log(self.name), self.name, ldflags=ld, cgo=cgo)
        static, debian = _load_layer(ctx, "base-static"), _load_layer(ctx, "base-debian")
        refs = layout.image_refs()
        labels = {"org.opencontainers.image.version": tag,
                  "org.opencontainers.image.source": "https://github.com/projectcalico/calico",
                  "org.opencontainers.image.revision": commit}
        lic = os.path.join(info["Dir"], "LICENSE.md")
        mtime = _epoch(when)

        # calico/cni
        cni_bin = CniPlugins().bindir(ctx)
        files = [("opt/cni/bin/calico", os.path.join(bindir, "calico"), 0o755, None),
                 ("opt/cni/bin/install", os.path.join(bindir, "install"), 0o755, None),
                 ("licenses/LICENSE", lic, 0o644, None)]
        files += [("opt/cni/bin/" + p, os.path.join(cni_bin, p), 0o755, None) for p in CALICO_CNI_FROM_PLUGINS]
        l = oci.Layer(mtime=mtime)
        for path, src, mode, _ in files:
            l.add_file(path, src, mode=mode)
        l.add_symlink("opt/cni/bin/calico-ipam", "./calico")
        top = _save_layer(ctx, "calico-cni", l)
        _image(ctx, refs["calico-cni"], [static, top], cmd=["/opt/cni/bin/install"], workdir="/opt/cni/bin",
               env=["PATH=/opt/cni/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], labels=labels)

        # calico/kube-controllers
        l = oci.Layer(mtime=mtime)
        for b in ("kube-controllers", "check-status", "wrapper"):
            l.add_file("usr/bin/" + b, os.path.join(bindir, b), mode=0o755)
        l.add_file("licenses/LICENSE", lic, mode=0o644)
        l.add_dir("status", mode=0o755)
        l.add_bytes("status/status.json", b"", mode=0o644, uid=999)
        l.add_dir("profiles", mode=0o755)
        l.add_bytes("profiles/mem.pprof", b"", mode=0o644, uid=999)
        l.add_bytes("profiles/cpu.pprof", b"", mode=0o644, uid=999)
        top = _save_layer(ctx, "calico-kube-controllers", l)
        _image(ctx, refs["calico-kube-controllers"], [static, top], user="999",
               entrypoint=["/usr/bin/wrapper", "/usr/bin/kube-controllers"], labels=labels)

        # calico/node: Debian network base + upstream node/filesystem (runit services) +
        # calico-node and mountns.
        fs = os.path.join(info["Dir"], "node", "filesystem")
        l = oci.Layer(mtime=mtime)
        for sub in ("etc",):
            l.add_tree(sub, os.path.join(fs, sub), keep_owner=False)
        for f in sorted(os.listdir(os.path.join(fs, "sbin"))):
            l.add_file("usr/sbin/" + f, os.path.join(fs, "sbin", f), mode=0o755)
        # Upstream copies to /bin on UBI, where /bin is a symlink to usr/bin; Debian's /bin is
        # that symlink too, and a "bin/" directory in this layer would hide it (and /bin/sh).
        l.add_file("usr/bin/calico-node", os.path.join(bindir, "calico-node"), mode=0o4755)
        l.add_file("usr/bin/mountns", os.path.join(bindir, "mountns"), mode=0o4755)
        l.add_file("licenses/LICENSE", lic, mode=0o644)
        # The module cache is read-only and module zips keep no execute bits: set the modes
        # the Dockerfile's COPY gives (dirs 0755, files 0644, runit scripts and rc.local 0755).
        for name in l.names():
            ti, src = l.entries[name]
            if not name.startswith("etc/"):
                continue
            if ti.isdir():
                ti.mode = 0o755
            elif (name.startswith("etc/service/") and name.endswith("/run")) or name == "etc/rc.local":
                ti.mode = 0o755
            elif ti.isfile():
                ti.mode = 0o644
        # Debian's runit makes /etc/service a symlink to its own runsvdir; calico's runit tree
        # wants a real /etc/service/{available,enabled}, so that one is replaced on purpose.
        _check_not_shadowing(l, debian, allow=("etc/service",))
        top = _save_layer(ctx, "calico-node", l)
        _image(ctx, refs["calico-node"], [debian, top], cmd=["start_runit"],
               env=[PATH_ENV, "SVDIR=/etc/service/enabled"], labels=labels)

        # manifests/calico.yaml as served upstream for this tag.
        _publish(ctx, "calico_manifest", os.path.join(info["Dir"], "manifests", "calico.yaml"))


ALL = [Kubernetes(), Etcd(), Containerd(), Runc(), Crictl(), CniPlugins(), StaticBase(), DebianBase(),
       Pause(), KubernetesImages(), EtcdImage(), Coredns(), KubeVip(), Libbpf(), Calico(), Agnhost()]
BY_NAME = {c.name: c for c in ALL}
