"""A stub Kubernetes API for recording what the real kubectl prints, without a cluster.

    python3 tests/facts/stubapi.py PORT SCENARIO.json

serves, over plain HTTP on 127.0.0.1:PORT, ``ok`` on /healthz, /livez and /readyz, legacy discovery for the resources the facts read
(nodes, secrets, daemonsets, deployments, clusterrolebindings and, when the scenario has
``"calico_crd": true``, ippools.crd.projectcalico.org), ``/version``, and GETs of the
scenario's ``objects`` (single objects and lists, ``fieldSelector=type=...`` on lists),
with a NotFound Status for anything else. The objects are written by hand following the
Kubernetes API; only kubectl's side (discovery, go-template, --ignore-not-found, exit codes)
is real. Point a kubeconfig at ``http://127.0.0.1:PORT`` and run the fact commands.
Not a test; pytest does not collect it.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# (group, version, plural, kind, namespaced)
RESOURCES = [
    ("", "v1", "nodes", "Node", False),
    ("", "v1", "secrets", "Secret", True),
    ("apps", "v1", "daemonsets", "DaemonSet", True),
    ("apps", "v1", "deployments", "Deployment", True),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
]
CALICO = ("crd.projectcalico.org", "v1", "ippools", "IPPool", False)
VERSION = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.8",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-10-14T00:00:00Z",
    "goVersion": "go1.25.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _prefix(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


class Scenario:
    def __init__(self, path: str) -> None:
        with open(path) as f:
            data = json.load(f)
        self.objects = data.get("objects", [])
        self.resources = RESOURCES + ([CALICO] if data.get("calico_crd") else [])

    def discovery(self, path: str):
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = sorted({(g, v) for g, v, *_ in self.resources if g})
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        for group, version in {(g, v) for g, v, *_ in self.resources}:
            if path == _prefix(group, version):
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}" if group else version,
                    "resources": [
                        {
                            "name": plural,
                            "singularName": kind.lower(),
                            "namespaced": namespaced,
                            "kind": kind,
                            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                        }
                        for g, v, plural, kind, namespaced in self.resources
                        if (g, v) == (group, version)
                    ],
                }
        return None

    def get(self, path: str, query: dict):
        for group, version, plural, kind, namespaced in self.resources:
            prefix = _prefix(group, version)
            api_version = f"{group}/{version}" if group else version
            of_kind = [
                o for o in self.objects if o.get("kind") == kind and o.get("apiVersion") == api_version
            ]
            for obj in of_kind:
                ns = obj["metadata"].get("namespace")
                where = f"{prefix}/namespaces/{ns}/{plural}" if namespaced else f"{prefix}/{plural}"
                if path == f"{where}/{obj['metadata']['name']}":
                    return obj
            parts = path[len(prefix) :].strip("/").split("/") if path.startswith(prefix) else []
            ns = None
            if namespaced and len(parts) == 3 and parts[0] == "namespaces" and parts[2] == plural:
                ns = parts[1]
            elif parts != [plural]:
                continue
            items = [o for o in of_kind if ns is None or o["metadata"].get("namespace") == ns]
            for selector in query.get("fieldSelector", []):
                key, _, value = selector.partition("=")
                if key == "type":
                    items = [o for o in items if o.get("type") == value]
            return {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": "48213"},
                "items": items,
            }
        return None


class Handler(BaseHTTPRequestHandler):
    scenario: Scenario

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.path in ("/healthz", "/livez", "/readyz"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        if url.path == "/version":
            body, code = VERSION, 200
        else:
            body = self.scenario.discovery(url.path) or self.scenario.get(
                url.path, parse_qs(url.query)
            )
            code = 200
            if body is None:
                code = 404
                body = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "the server could not find the requested resource",
                    "reason": "NotFound",
                    "details": {},
                    "code": 404,
                }
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # noqa: A002
        sys.stderr.write("stubapi: " + format % args + "\n")


def main() -> None:
    port, scenario = int(sys.argv[1]), sys.argv[2]
    Handler.scenario = Scenario(scenario)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
