"""The lab's small HTTP servers on the gateway address (stdlib only).

  python3 -m lab.servers files --listen ADDR:PORT --root DIR
      static files (GET/HEAD, directory listings, byte ranges) for the artifact mirror.
  python3 -m lab.servers apt-proxy --listen ADDR:PORT --allow URL [--allow URL ...] --cache DIR
      an HTTP proxy for the hosts' apt that fetches only below the allowed URLs (the Debian
      mirror the machine itself uses); .deb files and by-hash indexes are cached in DIR.

Both bind the one address they are given (the lab's gateway), never a wildcard.
"""

from __future__ import annotations

import argparse
import email.utils
import http.client
import http.server
import os
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path


def _log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
    sys.stderr.flush()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


# ---- files ------------------------------------------------------------------------------

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class FilesHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeha-lab-files"

    def log_message(self, fmt, *args):  # noqa: A003 - stdlib name
        _log(f"{self.client_address[0]} {fmt % args}")

    def send_head(self):
        # Directory listings and 404s come from the stdlib; files get Range support here.
        self._send_len = None
        path = self.translate_path(self.path)
        if os.path.isdir(path) or not os.path.isfile(path):
            return super().send_head()
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(404, "File not found")
            return None
        fs = os.fstat(f.fileno())
        size = fs.st_size
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        m = _RANGE_RE.match(rng.strip()) if rng else None
        partial = False
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(0, size - int(m.group(2)))
            end = min(end, size - 1)
            if start > end or start >= size:
                f.close()
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            partial = True
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", self.date_time_string(int(fs.st_mtime)))
        self.send_header("Accept-Ranges", "bytes")
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        f.seek(start)
        self._send_len = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        length = getattr(self, "_send_len", None)
        if length is None:  # directory listing (a BytesIO)
            return super().copyfile(source, outputfile)
        self.wfile.flush()
        offset = source.tell()
        try:
            self.connection.sendfile(source, offset, length)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._send_len = None


def serve_files(listen: tuple[str, int], root: str) -> None:
    os.makedirs(root, exist_ok=True)

    class Handler(FilesHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

    httpd = _Server(listen, Handler)
    _log(f"serving {root} on http://{listen[0]}:{listen[1]}/")
    httpd.serve_forever()


# ---- apt proxy --------------------------------------------------------------------------

_PASS_REQUEST = ("Range", "If-Range", "If-Modified-Since", "If-None-Match", "Cache-Control", "Accept")
_PASS_RESPONSE = (
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "Last-Modified",
    "ETag",
    "Date",
    "Cache-Control",
    "Expires",
)
# Files whose content never changes under the same URL: safe to cache forever.
_CACHEABLE = re.compile(r"(/pool/.+\.(deb|dsc|tar\.[a-z0-9]+|diff\.gz)$)|(/by-hash/[A-Za-z0-9]+/[0-9a-f]{32,}$)")


class Upstream:
    """One allowed place: requests for http://HOST/PREFIX... go to BASE (same host)."""

    def __init__(self, url: str):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.scheme = u.scheme
        self.host = u.hostname.lower()
        self.port = u.port or (443 if u.scheme == "https" else 80)
        # Hosts ask for the plain-http form of the URL (same host, same explicit port).
        self.client_port = u.port or 80
        self.prefix = u.path.rstrip("/") + "/"

    def matches(self, host: str, port: int, path: str) -> bool:
        return (
            host == self.host
            and port == self.client_port
            and path.startswith(self.prefix)
            and ".." not in path.split("/")
            and "%2e" not in path.lower()  # no encoded dots either
        )

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=60)
        return http.client.HTTPConnection(self.host, self.port, timeout=60)


class AptProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeha-lab-apt-proxy"
    upstreams: list[Upstream] = []
    cache_dir: Path = Path("/nonexistent")
    _cache_lock = threading.Lock()

    def log_message(self, fmt, *args):  # noqa: A003
        _log(f"{self.client_address[0]} {fmt % args}")

    def _refuse(self, code: int, why: str) -> None:
        body = (why + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_CONNECT(self):  # noqa: N802
        self._refuse(405, "CONNECT is not offered: the lab's apt proxy fetches plain http only")
        self.close_connection = True

    def do_POST(self):  # noqa: N802
        self._refuse(405, "only GET and HEAD")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def do_GET(self):  # noqa: N802
        u = urllib.parse.urlsplit(self.path)
        if u.scheme != "http" or not u.hostname:
            return self._refuse(400, "send absolute http:// URLs (this is a proxy)")
        host, path = u.hostname.lower(), u.path or "/"
        try:
            port = u.port or 80
        except ValueError:
            return self._refuse(400, "bad port")
        up = next((x for x in self.upstreams if x.matches(host, port, path)), None)
        if up is None:
            return self._refuse(403, f"not allowed: {host}{path} (only the Debian mirror)")
        cacheable = bool(_CACHEABLE.search(path)) and "Range" not in self.headers
        cached = self.cache_dir / host / path.lstrip("/") if cacheable else None
        if cached is not None and cached.is_file():
            return self._send_cached(cached)
        self._forward(up, path + (("?" + u.query) if u.query else ""), cached)

    def _send_cached(self, f: Path) -> None:
        size = f.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("Last-Modified", email.utils.formatdate(f.stat().st_mtime, usegmt=True))
        self.send_header("X-Cache", "HIT")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(f, "rb") as fh:
            self.wfile.flush()
            self.connection.sendfile(fh)

    def _forward(self, up: Upstream, path: str, cached: Path | None) -> None:
        headers = {k: self.headers[k] for k in _PASS_REQUEST if k in self.headers}
        headers["Host"] = up.host
        headers["User-Agent"] = self.headers.get("User-Agent", "kubeha-lab-apt-proxy")
        conn = up.connect()
        try:
            conn.request(self.command, path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            return self._refuse(502, f"upstream {up.host}: {e}")
        try:
            length = resp.getheader("Content-Length")
            self.send_response(resp.status, resp.reason)
            for k in _PASS_RESPONSE:
                v = resp.getheader(k)
                if v is not None:
                    self.send_header(k, v)
            if length is None and self.command != "HEAD" and resp.status not in (204, 304):
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD" or resp.status in (204, 304):
                return
            store = cached is not None and resp.status == 200 and length is not None
            tmp = None
            if store:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = tempfile.NamedTemporaryFile(dir=cached.parent, prefix=".part-", delete=False)
            got = 0
            try:
                while True:
                    chunk = resp.read(256 * 1024)
                    if not chunk:
                        break
                    got += len(chunk)
                    if tmp is not None:
                        tmp.write(chunk)
                    self.wfile.write(chunk)
            finally:
                if tmp is not None:
                    tmp.close()
                    if got == int(length):
                        os.replace(tmp.name, cached)
                    else:
                        os.unlink(tmp.name)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            conn.close()


def serve_apt_proxy(listen: tuple[str, int], allow: list[str], cache: str) -> None:
    AptProxyHandler.upstreams = [Upstream(a) for a in allow]
    AptProxyHandler.cache_dir = Path(cache)
    Path(cache).mkdir(parents=True, exist_ok=True)
    httpd = _Server(listen, AptProxyHandler)
    _log(f"apt proxy on {listen[0]}:{listen[1]} for {', '.join(allow)}; cache {cache}")
    httpd.serve_forever()


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS:PORT, got {text!r}")
    if host in ("", "0.0.0.0", "::", "*"):
        raise argparse.ArgumentTypeError("refusing a wildcard address: give the lab gateway address")
    socket.inet_aton(host)
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m lab.servers")
    sub = p.add_subparsers(dest="what", required=True)
    f = sub.add_parser("files")
    f.add_argument("--listen", type=_listen, required=True)
    f.add_argument("--root", required=True)
    a = sub.add_parser("apt-proxy")
    a.add_argument("--listen", type=_listen, required=True)
    a.add_argument("--allow", action="append", required=True)
    a.add_argument("--cache", required=True)
    args = p.parse_args(argv)
    try:
        if args.what == "files":
            serve_files(args.listen, args.root)
        else:
            serve_apt_proxy(args.listen, args.allow, args.cache)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
