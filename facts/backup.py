"""Facts about etcd snapshots on a host and the static pods a restore stops and starts."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, load_json, sections


class Snapshots(FactBase[dict]):
    """
    The snapshots in a directory, by the metadata files beside them: ``{name: {"size": bytes of
    NAME.db or None when it is missing, "metadata": the text of NAME.json}}``; {} when the
    directory holds none (or does not exist).

    .. code:: python

        {"lab-ha-etcd-20261122T060000Z-cp1": {"size": 5312544, "metadata": "{\\"name\\": ...}"}}
    """

    default = dict

    @override
    def command(self, directory: str) -> str:
        d = shlex.quote(directory)
        # one line per snapshot: name, size of the snapshot ("-": missing), the metadata
        return (f'if [ -d {d} ]; then for f in {d}/*.json; do [ -f "$f" ] || continue; '
                f'n=$(basename "$f" .json); printf "%s %s " "$n" "$(stat -c %s {d}/"$n".db 2>/dev/null || echo -)"; '
                f'tr -d "\\n" < "$f"; echo; done; fi')

    @override
    def process(self, output: list[str]) -> dict:
        result = {}
        for line in output:
            name, size, metadata = (line.split(" ", 2) + ["", ""])[:3]
            if name:
                result[name] = {"size": int(size) if size.isdigit() else None, "metadata": metadata}
        return result


class SnapshotFile(FactBase[dict | None]):
    """
    A snapshot file: its size, its sha256 and what ``etcdutl snapshot status -w json`` reads
    in it (None when etcdutl cannot read it as a snapshot, or is not installed). None when the
    file does not exist.

    .. code:: python

        {"size": 5312544, "sha256": "9f86d0...", "status": {"revision": 48211, "hash": 3816617297,
                                                           "keys": 1021, "size": 5312512, "version": "3.6.0"}}
    """

    @override
    def command(self, path: str) -> str:
        p = shlex.quote(path)
        return (f"if [ -f {p} ]; then echo \"{MARKER}size $(stat -c %s {p})\"; "
                f"echo \"{MARKER}sha256 $(sha256sum {p} | cut -d ' ' -f 1)\"; echo '{MARKER}status'; "
                f"etcdutl snapshot status {p} -w json 2>/dev/null || true; fi")

    @override
    def process(self, output: list[str]) -> dict | None:
        parts = sections(output)
        if "size" not in parts:
            return None
        status = load_json(parts.get("status", ("", []))[1])
        if isinstance(status, dict) and isinstance(status.get("revision"), int):
            status = {"revision": status["revision"], "hash": status.get("hash"), "keys": status.get("totalKey"),
                      "size": status.get("totalSize"), "version": status.get("version")}
        else:
            status = None
        size = parts["size"][0]
        return {"size": int(size) if size.isdigit() else None, "sha256": parts.get("sha256", ("", []))[0],
                "status": status}


class StaticPod(FactBase[dict]):
    """
    Where a static pod's manifest is, and whether its container runs: ``{"manifest": in the
    kubelet's manifests directory, "aside": at the place a restore keeps it, "running": a
    running container of that name (crictl)}``.
    """

    @override
    def command(self, manifest: str, aside: str) -> str:
        container = manifest.rsplit("/", 1)[1].removesuffix(".yaml")
        return (f"if [ -f {shlex.quote(manifest)} ]; then echo manifest; fi; "
                f"if [ -f {shlex.quote(aside)} ]; then echo aside; fi; "
                f"if crictl ps -q --name {shlex.quote(f'^{container}$')} 2>/dev/null | grep -q .; then echo running; fi")

    @override
    def process(self, output: list[str]) -> dict:
        found = {line.strip() for line in output}
        return {key: key in found for key in ("manifest", "aside", "running")}

    @staticmethod
    def default() -> dict:
        return {"manifest": False, "aside": False, "running": False}
