"""Helpers shared by the fact modules: marker lines, kubectl and JSON reading."""

from __future__ import annotations

import json
import shlex
from typing import Any

# A fact whose command prints several things separates them with lines starting with this.
MARKER = "#kubeha:"

# Printed instead of the answer when the API (or etcd) cannot be read.
UNREACHABLE = f"{MARKER}unreachable"

# kubectl gives up on an unreachable API after this long (per request). A command that needs
# API discovery retries it several times, so commands first probe the API with one request.
REQUEST_TIMEOUT = "5s"


def sections(lines: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Split command output on ``#kubeha:NAME [VALUE]`` lines.

    Returns ``{NAME: (VALUE, [lines up to the next marker])}``; lines before the first
    marker are kept under the name "". A name given twice keeps its last section.
    """
    result: dict[str, tuple[str, list[str]]] = {}
    name, value, body = "", "", []
    for line in lines:
        if line.startswith(MARKER):
            if name or body:
                result[name] = (value, body)
            name, _, value = line[len(MARKER) :].partition(" ")
            value, body = value.strip(), []
        else:
            body.append(line)
    if name or body:
        result[name] = (value, body)
    return result


def load_json(lines: list[str]) -> Any:
    """The JSON document printed on ``lines``, or None when it cannot be read."""
    text = "\n".join(lines).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def kubectl(kubeconfig: str, args: str) -> str:
    """A kubectl command line using ``kubeconfig`` and a short request timeout."""
    return (
        f"kubectl --kubeconfig={shlex.quote(kubeconfig)} "
        f"--request-timeout={REQUEST_TIMEOUT} {args}"
    )


def if_readable(path: str, command: str) -> str:
    """Run ``command`` only when ``path`` is a readable file; print nothing otherwise."""
    return f"if [ -r {shlex.quote(path)} ]; then {command}; fi"


def if_api_answers(kubeconfig: str, command: str) -> str:
    """Run ``command`` when ``kubeconfig`` exists and the API answers ``/version`` (one
    request, so an unreachable API costs one timeout, not one per discovery retry); print
    UNREACHABLE when it does not answer, nothing when the kubeconfig is missing."""
    probe = kubectl(kubeconfig, "get --raw=/version")
    return if_readable(
        kubeconfig,
        f"if {probe} >/dev/null 2>&1; then {command}; else echo '{UNREACHABLE}'; fi",
    )


def dig(data: Any, *keys: str, default: Any = None) -> Any:
    """``data[k1][k2]...`` or ``default`` when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data
