"""Small helpers: progress, running commands, hashing, reproducible tarballs."""
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time

_T0 = time.monotonic()


def fmt_secs(s):
    s = int(s)
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


def say(label, msg):
    print("[%7s] %-16s %s" % (fmt_secs(time.monotonic() - _T0), label, msg), flush=True)


class Failed(Exception):
    pass


def run(cmd, label, log=None, env=None, cwd=None, tick=30, quiet=False):
    """Run cmd; its output goes to `log` (appended).  Every `tick` seconds print that it is
    still running, with the elapsed time, so long builds show progress.  Raise Failed with the
    log's tail when it fails."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    start = time.monotonic()
    if log:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        out = open(log, "ab")
        out.write(("\n$ %s\n" % " ".join(cmd)).encode())
        out.flush()
    else:
        out = subprocess.DEVNULL if quiet else None
    try:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
        stop = threading.Event()

        what = " ".join(os.path.basename(c) for c in cmd[:2])
        if "-o" in cmd[:-1]:
            what += " -o " + os.path.basename(cmd[cmd.index("-o") + 1])
        elif len(cmd) > 2:
            what += " " + os.path.basename(cmd[-1])

        def ticker():
            while not stop.wait(tick):
                say(label, "... still running: %s (%s)" % (what, fmt_secs(time.monotonic() - start)))

        t = threading.Thread(target=ticker, daemon=True)
        t.start()
        rc = p.wait()
        stop.set()
    finally:
        if log:
            out.close()
    if rc != 0:
        tail = ""
        if log:
            with open(log, "rb") as f:
                f.seek(max(0, os.path.getsize(log) - 3000))
                tail = f.read().decode(errors="replace")
        raise Failed("%s: command failed (exit %d): %s\n--- last lines of %s ---\n%s"
                     % (label, rc, " ".join(cmd)[:300], log, tail))
    return time.monotonic() - start


def capture(cmd, env=None, cwd=None):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=full_env, cwd=cwd).stdout


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sha256(path):
    """Write PATH.sha256 ("<hex>  <name>\\n", `sha256sum -c` format) and return the hex."""
    sha = sha256_file(path)
    with open(path + ".sha256", "w") as f:
        f.write("%s  %s\n" % (sha, os.path.basename(path)))
    return sha


def install_file(src, dst, mode=0o755):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, mode)
    os.replace(tmp, dst)


def _tarinfo(name, size=0, mode=0o755, mtime=0, kind=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = mtime
    ti.type = kind
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def write_tgz(dst, entries, mtime=0):
    """A reproducible .tar.gz: entries is a list of (name in archive, source file or None for a
    directory, mode).  Owner root, fixed mtime, gzip header without time or name."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for name, src, mode in entries:
                    if src is None:
                        tar.addfile(_tarinfo(name, mode=mode, mtime=mtime, kind=tarfile.DIRTYPE))
                    else:
                        with open(src, "rb") as f:
                            tar.addfile(_tarinfo(name, os.path.getsize(src), mode, mtime), f)
    os.replace(tmp, dst)
    return dst


def read_text(path):
    with open(path) as f:
        return f.read()


def write_text(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def stderr(msg):
    print(msg, file=sys.stderr, flush=True)


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()
