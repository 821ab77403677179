"""A small writer of OCI image archives (oci-archive: a tar of an OCI image layout).

No daemon: layers are tar files we write ourselves (owner root unless told otherwise, fixed
mtime, sorted), gzip-compressed with a fixed header.  The result reads back with
`skopeo inspect oci-archive:FILE`, pushes with `skopeo copy`, and imports with
`ctr images import` (the containerd name is in the io.containerd.image.name annotation).
"""
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


class _HashWriter(io.RawIOBase):
    """File wrapper that hashes and counts what goes through it."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)


class Layer:
    """A layer being assembled.  Add directories, files (from disk or bytes), symlinks and
    whole trees; then `write(path)` produces the gzip blob and returns (digest, size, diff_id).

    Parent directories are added automatically (mode 0755, root).
    """

    def __init__(self, mtime=0):
        self.mtime = mtime
        self.entries = {}   # name -> (TarInfo, source path or bytes or None)

    @staticmethod
    def _norm(name):
        name = name.strip("/")
        if not name or ".." in name.split("/"):
            raise ValueError("bad path in layer: %r" % name)
        return name

    def _info(self, name, kind, mode, uid=0, gid=0, size=0, linkname="", xattrs=None, mtime=None):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.size = kind, mode, uid, gid, size
        ti.mtime = self.mtime if mtime is None else mtime
        ti.uname = ti.gname = ""
        ti.linkname = linkname
        if xattrs:
            # PAX records SCHILY.xattr.*, read by containerd/runc image unpackers (file
            # capabilities, like upstream images made with setcap).
            ti.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                              for k, v in xattrs.items()}
        return ti

    def _parents(self, name):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.entries:
                self.entries[d] = (self._info(d, tarfile.DIRTYPE, 0o755), None)

    def add_dir(self, name, mode=0o755, uid=0, gid=0):
        name = self._norm(name)
        self._parents(name)
        self.entries[name] = (self._info(name, tarfile.DIRTYPE, mode, uid, gid), None)

    def add_bytes(self, name, data, mode=0o644, uid=0, gid=0, xattrs=None):
        name = self._norm(name)
        self._parents(name)
        self.entries[name] = (self._info(name, tarfile.REGTYPE, mode, uid, gid, len(data), xattrs=xattrs), bytes(data))

    def add_file(self, name, src, mode=None, uid=0, gid=0, xattrs=None):
        name = self._norm(name)
        self._parents(name)
        st = os.stat(src)
        m = stat.S_IMODE(st.st_mode) if mode is None else mode
        self.entries[name] = (self._info(name, tarfile.REGTYPE, m, uid, gid, st.st_size, xattrs=xattrs), src)

    def add_symlink(self, name, target):
        name = self._norm(name)
        self._parents(name)
        self.entries[name] = (self._info(name, tarfile.SYMTYPE, 0o777, linkname=target), None)

    def add_tree(self, prefix, src_dir, keep_owner=True, clamp_mtime=True):
        """Add a directory tree as it is on disk (modes, owners, symlinks, hard links as
        copies, device nodes skipped) under `prefix` ('' for the root)."""
        src_dir = os.path.abspath(src_dir)
        for dirpath, dirnames, filenames in os.walk(src_dir):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, src_dir)
            for n in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, n)
                rel = n if rel_dir == "." else os.path.join(rel_dir, n)
                name = self._norm(os.path.join(prefix, rel)) if prefix else self._norm(rel)
                st = os.lstat(full)
                uid, gid = (st.st_uid, st.st_gid) if keep_owner else (0, 0)
                mode = stat.S_IMODE(st.st_mode)
                mtime = self.mtime if clamp_mtime else int(st.st_mtime)
                if stat.S_ISLNK(st.st_mode):
                    self.entries[name] = (self._info(name, tarfile.SYMTYPE, 0o777, uid, gid,
                                                     linkname=os.readlink(full), mtime=mtime), None)
                elif stat.S_ISDIR(st.st_mode):
                    self.entries[name] = (self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime=mtime), None)
                elif stat.S_ISREG(st.st_mode):
                    self.entries[name] = (self._info(name, tarfile.REGTYPE, mode, uid, gid, st.st_size,
                                                     mtime=mtime), full)
                # sockets, fifos, device nodes: not part of an image layer

    def names(self):
        return sorted(self.entries)

    def write(self, path, compresslevel=6):
        """Write the gzip blob to `path`; return (digest, size, diff_id)."""
        with open(path, "wb") as raw:
            comp = _HashWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=comp, mtime=0, compresslevel=compresslevel) as gz:
                plain = _HashWriter(gz)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT,
                                  encoding="utf-8", errors="surrogateescape") as tar:
                    for name in sorted(self.entries):
                        ti, src = self.entries[name]
                        if ti.type == tarfile.DIRTYPE:
                            ti = _copy(ti, name + "/")
                        if isinstance(src, bytes):
                            tar.addfile(ti, io.BytesIO(src))
                        elif src is not None:
                            with open(src, "rb") as f:
                                tar.addfile(ti, f)
                        else:
                            tar.addfile(ti)
        return "sha256:" + comp.h.hexdigest(), comp.n, "sha256:" + plain.h.hexdigest()


def _copy(ti, name):
    c = tarfile.TarInfo(name)
    for a in ("size", "mode", "mtime", "type", "linkname", "uid", "gid", "uname", "gname", "pax_headers"):
        setattr(c, a, getattr(ti, a))
    return c


def _blob_json(obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def write_image(archive, ref, layers, entrypoint=None, cmd=None, env=None, user=None,
                workdir=None, labels=None, created="1970-01-01T00:00:00Z", arch="amd64",
                stop_signal=None, exposed_ports=None, history_comment="kubeha artifacts"):
    """Write an oci-archive at `archive` for image reference `ref`.

    layers: list of (blob path, digest, size, diff_id) as returned by Layer.write (a blob
    file can be shared between images).  Returns the manifest digest.
    """
    _, _, tag = ref.rpartition(":")
    cfg = {"Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if entrypoint is not None:
        cfg["Entrypoint"] = entrypoint
    if cmd is not None:
        cfg["Cmd"] = cmd
    if user:
        cfg["User"] = user
    if workdir:
        cfg["WorkingDir"] = workdir
    if labels:
        cfg["Labels"] = labels
    if stop_signal:
        cfg["StopSignal"] = stop_signal
    if exposed_ports:
        cfg["ExposedPorts"] = {p: {} for p in exposed_ports}
    config = {
        "architecture": arch, "os": "linux", "created": created, "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [l[3] for l in layers]},
        "history": [{"created": created, "created_by": history_comment, "comment": os.path.basename(l[0])}
                    for l in layers],
    }
    cfg_data, cfg_digest = _blob_json(config)
    manifest = {
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": cfg_digest, "size": len(cfg_data)},
        "layers": [{"mediaType": MT_LAYER, "digest": l[1], "size": l[2]} for l in layers],
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    man_data, man_digest = _blob_json(manifest)
    index = {
        "schemaVersion": 2, "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST, "digest": man_digest, "size": len(man_data),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag,
                            "io.containerd.image.name": ref},
        }],
    }
    idx_data, _ = _blob_json(index)
    os.makedirs(os.path.dirname(os.path.abspath(archive)), exist_ok=True)
    tmp = archive + ".tmp"
    seen = set()
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=None, src=None):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = 0o644, 0
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                ti.size = os.path.getsize(src)
                with open(src, "rb") as f:
                    tar.addfile(ti, f)
        for d in ("blobs", "blobs/sha256"):
            ti = tarfile.TarInfo(d + "/")
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(ti)
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", idx_data)
        add("blobs/sha256/" + man_digest.split(":")[1], man_data)
        add("blobs/sha256/" + cfg_digest.split(":")[1], cfg_data)
        for blob, digest, size, _ in layers:
            if digest in seen:
                continue
            seen.add(digest)
            if os.path.getsize(blob) != size:
                raise ValueError("layer blob %s changed size" % blob)
            add("blobs/sha256/" + digest.split(":")[1], src=blob)
    os.replace(tmp, archive)
    return man_digest


def read_index(archive):
    """(index, manifest, config) of an oci-archive written here (for checks and tests)."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        d = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile("blobs/sha256/" + d))
        c = manifest["config"]["digest"].split(":")[1]
        config = json.load(tar.extractfile("blobs/sha256/" + c))
    return index, manifest, config
