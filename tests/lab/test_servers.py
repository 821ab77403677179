"""The lab's file server and apt proxy, run on loopback (no root, no lab needed).

The apt proxy's "Debian mirror" here is a file server on 127.0.0.1 laid out like one."""

import http.client
import socket
import threading
import time
from functools import partial

import pytest

from lab import servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server_cls, handler, port):
    httpd = server_cls(("127.0.0.1", port), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    return httpd


@pytest.fixture
def files_root(tmp_path):
    root = tmp_path / "files"
    (root / "dl.k8s.io/release/v1/bin").mkdir(parents=True)
    (root / "dl.k8s.io/release/v1/bin/kubeadm").write_bytes(bytes(range(256)) * 40)
    return root


@pytest.fixture
def files_server(files_root):
    port = free_port()
    handler = partial(servers.FilesHandler, directory=str(files_root))
    httpd = start(servers._Server, handler, port)
    yield port
    httpd.shutdown()
    httpd.server_close()


def get(port, path, headers=None, method="GET", host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_files_whole_file_range_listing_and_404(files_server, files_root):
    data = (files_root / "dl.k8s.io/release/v1/bin/kubeadm").read_bytes()
    r, body = get(files_server, "/dl.k8s.io/release/v1/bin/kubeadm")
    assert r.status == 200 and body == data
    assert r.getheader("Content-Length") == str(len(data))
    r, body = get(files_server, "/dl.k8s.io/release/v1/bin/kubeadm", {"Range": "bytes=100-199"})
    assert r.status == 206 and body == data[100:200]
    assert r.getheader("Content-Range") == f"bytes 100-199/{len(data)}"
    r, body = get(files_server, "/dl.k8s.io/release/v1/bin/kubeadm", {"Range": "bytes=-10"})
    assert r.status == 206 and body == data[-10:]
    r, _ = get(files_server, "/dl.k8s.io/release/v1/bin/kubeadm", {"Range": f"bytes={len(data)}-"})
    assert r.status == 416
    r, body = get(files_server, "/dl.k8s.io/release/v1/bin/kubeadm", method="HEAD")
    assert r.status == 200 and body == b""
    r, body = get(files_server, "/dl.k8s.io/release/v1/bin/")
    assert r.status == 200 and b"kubeadm" in body
    r, _ = get(files_server, "/nope")
    assert r.status == 404


def test_files_keep_alive_after_head(files_server):
    c = http.client.HTTPConnection("127.0.0.1", files_server, timeout=10)
    c.request("HEAD", "/dl.k8s.io/release/v1/bin/kubeadm")
    r = c.getresponse()
    r.read()
    c.request("GET", "/dl.k8s.io/release/v1/bin/")  # a listing on the same connection
    r = c.getresponse()
    assert r.status == 200 and b"kubeadm" in r.read()
    c.close()


@pytest.fixture
def mirror_and_proxy(tmp_path):
    """A fake mirror at http://127.0.0.1:M/debian and the proxy allowing only that."""
    root = tmp_path / "mirror"
    pool = root / "debian/pool/main/s/socat"
    pool.mkdir(parents=True)
    (pool / "socat_1.0_amd64.deb").write_bytes(b"deb-bytes" * 1000)
    (root / "debian/dists/trixie").mkdir(parents=True)
    (root / "debian/dists/trixie/InRelease").write_text("release v1\n")
    (root / "other").mkdir()
    (root / "other/secret").write_text("x")
    mport = free_port()
    mirror = start(servers._Server, partial(servers.FilesHandler, directory=str(root)), mport)

    pport = free_port()
    cache = tmp_path / "cache"

    class Handler(servers.AptProxyHandler):
        upstreams = [servers.Upstream(f"http://127.0.0.1:{mport}/debian")]
        cache_dir = cache

    proxy = start(servers._Server, Handler, pport)
    yield mport, pport, root, cache
    for s in (mirror, proxy):
        s.shutdown()
        s.server_close()


def test_apt_proxy_fetches_and_caches_debs(mirror_and_proxy):
    mport, pport, root, cache = mirror_and_proxy
    url = f"http://127.0.0.1:{mport}/debian/pool/main/s/socat/socat_1.0_amd64.deb"
    r, body = get(pport, url)
    assert r.status == 200 and body == b"deb-bytes" * 1000
    cached = cache / "127.0.0.1/debian/pool/main/s/socat/socat_1.0_amd64.deb"
    for _ in range(50):  # the proxy files it right after the last byte went out
        if cached.exists():
            break
        time.sleep(0.05)
    assert cached.read_bytes() == body
    (root / "debian/pool/main/s/socat/socat_1.0_amd64.deb").unlink()  # served from the cache now
    r, body = get(pport, url)
    assert r.status == 200 and body == b"deb-bytes" * 1000 and r.getheader("X-Cache") == "HIT"


def test_apt_proxy_does_not_cache_indexes(mirror_and_proxy):
    mport, pport, root, cache = mirror_and_proxy
    url = f"http://127.0.0.1:{mport}/debian/dists/trixie/InRelease"
    assert get(pport, url)[1] == b"release v1\n"
    (root / "debian/dists/trixie/InRelease").write_text("release v2\n")
    assert get(pport, url)[1] == b"release v2\n"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{m}/other/secret",  # same host, outside the mirror
        "http://127.0.0.1:{m}/debian/../other/secret",
        "http://127.0.0.1:{m}/debian/%2E%2E/other/secret",
        "http://localhost:{m}/debian/dists/trixie/InRelease",  # another host name
        "http://127.0.0.1:{p}/debian/dists/trixie/InRelease",  # another port = another place
    ],
)
def test_apt_proxy_refuses_anything_but_the_mirror(mirror_and_proxy, url):
    mport, pport, _root, _cache = mirror_and_proxy
    r, body = get(pport, url.format(m=mport, p=pport))
    assert r.status == 403, body


def test_apt_proxy_refuses_connect_and_non_proxy_requests(mirror_and_proxy):
    _mport, pport, _root, _cache = mirror_and_proxy
    r, _ = get(pport, "127.0.0.1:443", method="CONNECT")
    assert r.status == 405
    r, _ = get(pport, "/debian/dists/trixie/InRelease")
    assert r.status == 400


def test_servers_refuse_wildcard_addresses():
    with pytest.raises(SystemExit):
        servers.main(["files", "--listen", "0.0.0.0:8080", "--root", "/tmp"])
