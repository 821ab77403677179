"""Facts about the etcd cluster (etcdctl v3.6 over TLS) and the etcd binary on a host.

``endpoints`` is a list of client URLs (or one comma-separated string); ``cacert``, ``cert``
and ``key`` are paths on the host that etcdctl reads (the key is never printed).
"""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, UNREACHABLE, dig, load_json, sections


def _endpoint_list(endpoints: str | list[str]) -> list[str]:
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    return [e.strip() for e in endpoints if e.strip()]


def _etcdctl(endpoints, cacert: str, cert: str, key: str, args: str) -> str:
    return (
        f"etcdctl --endpoints={shlex.quote(','.join(_endpoint_list(endpoints)))}"
        f" --cacert={shlex.quote(cacert)} --cert={shlex.quote(cert)} --key={shlex.quote(key)}"
        f" --dial-timeout=2s --command-timeout=5s {args}"
    )


class EtcdMembers(FactBase[list | None]):
    """
    The cluster's members from ``etcdctl member list -w json`` (a linearizable read, so it
    needs a quorum). IDs are hex, as etcdctl's table prints them; a member added but not
    started yet has name "" and no client URLs. None when no member answers.

    .. code:: python

        [
            {
                "id": "7d8f837c8543d7c4",
                "name": "cp1",
                "peer_urls": ["https://10.123.0.21:2380"],
                "client_urls": ["https://10.123.0.21:2379"],
                "is_learner": False,
            },
        ]
    """

    @override
    def requires_command(self, endpoints, cacert: str, cert: str, key: str) -> str:
        return "etcdctl"

    @override
    def command(self, endpoints, cacert: str, cert: str, key: str) -> str:
        return (
            f"{_etcdctl(endpoints, cacert, cert, key, 'member list -w json')}"
            f" 2>/dev/null || echo '{UNREACHABLE}'"
        )

    @override
    def process(self, output: list[str]) -> list | None:
        members = dig(load_json(output), "members")
        if not isinstance(members, list):
            return None
        result = []
        for member in members:
            member_id = dig(member, "ID")
            if not isinstance(member_id, int):
                continue
            result.append(
                {
                    "id": format(member_id, "x"),
                    "name": dig(member, "name", default=""),
                    "peer_urls": dig(member, "peerURLs", default=[]),
                    "client_urls": dig(member, "clientURLs", default=[]),
                    "is_learner": dig(member, "isLearner", default=False) is True,
                }
            )
        return result


class EtcdHealth(FactBase[dict]):
    """
    Whether each endpoint given answers a health check (``etcdctl endpoint health -w json``),
    as ``{endpoint: bool}``. An endpoint that is down, has no quorum or is a learner (which
    refuses the check's read) is False; every endpoint given is in the answer.

    .. code:: python

        {"https://10.123.0.21:2379": True, "https://10.123.0.22:2379": False}
    """

    default = dict

    @override
    def requires_command(self, endpoints, cacert: str, cert: str, key: str) -> str:
        return "etcdctl"

    @override
    def command(self, endpoints, cacert: str, cert: str, key: str) -> str:
        # The endpoints are echoed first so that process() can answer False for those
        # etcdctl says nothing about. etcdctl exits 1 when one is unhealthy: not a failure.
        listed = shlex.quote(f"{MARKER}endpoints {','.join(_endpoint_list(endpoints))}")
        return (
            f"echo {listed}; echo '{MARKER}health'; "
            f"{_etcdctl(endpoints, cacert, cert, key, 'endpoint health -w json')} 2>/dev/null || true"
        )

    @override
    def process(self, output: list[str]) -> dict:
        parts = sections(output)
        health = {e: False for e in _endpoint_list(parts.get("endpoints", ("", []))[0])}
        results = load_json(parts.get("health", ("", []))[1])
        for result in results if isinstance(results, list) else []:
            endpoint = dig(result, "endpoint")
            if endpoint in health:
                health[endpoint] = dig(result, "health") is True
        return health


class EtcdMemberStatus(FactBase[dict]):
    """
    Whether each etcd endpoint given answers its health check and which etcd version serves it,
    asked over TLS with curl (``GET /health`` and ``/version``), so it needs no etcdctl on the
    host: it reads external members and kubeadm's stacked etcd pods alike. An endpoint that does
    not answer is unhealthy with version None; every endpoint given is in the answer.

    .. code:: python

        {"https://10.123.0.21:2379": {"healthy": True, "version": "3.6.14"}}
    """

    default = dict

    @override
    def requires_command(self, endpoints, cacert: str, cert: str, key: str) -> str:
        return "curl"

    @override
    def command(self, endpoints, cacert: str, cert: str, key: str) -> str:
        curl = (f"curl -s --max-time 3 --cacert {shlex.quote(cacert)} --cert {shlex.quote(cert)}"
                f" --key {shlex.quote(key)}")
        return "; ".join(
            f"echo {shlex.quote(f'{MARKER}endpoint {endpoint}')}; "
            f"{curl} {shlex.quote(endpoint + '/health')} 2>/dev/null; echo; "
            f"{curl} {shlex.quote(endpoint + '/version')} 2>/dev/null; echo"
            for endpoint in _endpoint_list(endpoints)
        )

    @override
    def process(self, output: list[str]) -> dict:
        status: dict = {}
        current = None
        for line in output:
            if line.startswith(f"{MARKER}endpoint "):
                current = line.split(" ", 1)[1].strip()
                status[current] = {"healthy": False, "version": None}
                continue
            answer = load_json([line])
            if current is None or not isinstance(answer, dict):
                continue
            if "health" in answer:
                status[current]["healthy"] = answer["health"] in ("true", True)
            server = answer.get("etcdserver")
            if isinstance(server, str) and server:
                status[current]["version"] = server
        return status


class EtcdVersion(FactBase[str | None]):
    """
    The version of the etcd program ``binary`` (``etcd --version``), e.g. "3.6.14"; None when
    it is missing or says no version.
    """

    @override
    def command(self, binary: str) -> str:
        quoted = shlex.quote(binary)
        return f"if [ -x {quoted} ]; then {quoted} --version 2>/dev/null || true; fi"

    @override
    def process(self, output: list[str]) -> str | None:
        for line in output:
            match = re.match(r"etcd Version:\s*v?(\d+\.\d+\.\d+\S*)", line.strip())
            if match:
                return match.group(1)
        return None


class EtcdLogLost(FactBase[bool]):
    """
    Whether etcd on this host last stopped because it lost its raft log: the cluster had
    committed entries to this member that its data dir does not hold (a wiped or restored data
    dir under the same member ID), and etcd panics ``tocommit(N) is out of range
    [lastIndex(M)]`` at every start. Read from the unit's journal: True when that panic is newer
    than the last "serving client traffic securely".
    """

    default = bool

    @override
    def requires_command(self) -> str:
        return "journalctl"

    @override
    def command(self) -> str:
        return ("journalctl -u etcd -o cat --no-pager -n 2000 2>/dev/null"
                " | grep -E 'tocommit\\([0-9]+\\) is out of range|serving client traffic securely'"
                " | tail -n 1 || true")

    @override
    def process(self, output: list[str]) -> bool:
        return bool(output) and "is out of range" in output[-1]


def stacked_etcdctl(node: str, kubeconfig: str, endpoints, cacert: str, cert: str, key: str, args: str) -> str:
    """etcdctl ARGS inside kubeadm's etcd static pod of `node` (kubectl exec through
    `kubeconfig`), against `endpoints` with the client certificate files as the pod sees them."""
    return (
        f"kubectl --kubeconfig={shlex.quote(kubeconfig)} --request-timeout=20s -n kube-system exec "
        f"{shlex.quote(f'etcd-{node}')} -- " + _etcdctl(endpoints, cacert, cert, key, args)
    )


class StackedEtcdMembers(FactBase[list | None]):
    """
    The members of kubeadm's stacked etcd (``member list -w json``), as EtcdMembers gives them,
    each with ``healthy``: whether its client URL answers ``endpoint health --cluster``. Read with
    etcdctl inside the etcd static pod of ``node`` (kubectl exec through ``kubeconfig``), against
    ``endpoints`` (the pod's own, e.g. https://127.0.0.1:2379) with ``cacert``, ``cert`` and
    ``key`` as the pod sees them. None when the kubeconfig is missing, or the API or etcd does not
    answer.

    .. code:: python

        [{"id": "7d8f837c8543d7c4", "name": "k1", "peer_urls": ["https://10.123.0.111:2380"],
          "client_urls": ["https://10.123.0.111:2379"], "is_learner": False, "healthy": True}]
    """

    @override
    def requires_command(self, node: str, kubeconfig: str, endpoints, cacert: str, cert: str, key: str) -> str:
        return "kubectl"

    @override
    def command(self, node: str, kubeconfig: str, endpoints, cacert: str, cert: str, key: str) -> str:
        members = stacked_etcdctl(node, kubeconfig, endpoints, cacert, cert, key, "member list -w json")
        health = stacked_etcdctl(node, kubeconfig, endpoints, cacert, cert, key, "endpoint health --cluster -w json")
        return (
            f"if [ -r {shlex.quote(kubeconfig)} ]; then echo '{MARKER}members'; {members} 2>/dev/null || "
            f"echo '{UNREACHABLE}'; echo '{MARKER}health'; {health} 2>/dev/null || true; fi"
        )

    @override
    def process(self, output: list[str]) -> list | None:
        parts = sections(output)
        member_lines = parts.get("members", ("", []))[1]
        if UNREACHABLE in member_lines:
            return None
        members = EtcdMembers().process(member_lines)
        if members is None:
            return None
        results = load_json(parts.get("health", ("", []))[1])
        results = results if isinstance(results, list) else []
        healthy = {dig(r, "endpoint") for r in results if dig(r, "health") is True}
        return [{**m, "healthy": any(url in healthy for url in m["client_urls"])} for m in members]
