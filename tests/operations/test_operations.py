"""Data-driven tests of kubeha's operations, in the manner of pyinfra's own.

Each ``tests/operations/<module>.<operation>/<case>.json`` holds:

- ``args``: the operation's arguments. With ``cluster`` (a shipped cluster file: lab-ha,
  lab-compact, topology-a, topology-b) the run's cluster is that file, every one of its hosts is
  in the inventory, and the strings ``"@cluster"`` and ``"@node:NAME"`` stand for the Cluster
  and one of its nodes.
- ``host``: the host the operation runs on (default ``n1``, or the cluster's first host).
- ``facts``: what that host's facts say, ``{"<module>.<Fact>": value}``: kubeha's facts
  (facts/<module>.py) first, else pyinfra's (pyinfra.facts.<module>). A fact read with
  arguments maps ``"name=value,..."`` (sorted by name; lists as JSON) to its value.
- ``other_hosts``: ``{host: facts}`` of the other hosts, for operations that read them.
- ``executing``: false when the body runs while planning (``--dry``); true by default.
- ``commands``: what the operation yields, in order: strings, ``upload PATH`` for a file,
  ``function NAME`` for a function run here.
- ``noop``: when it yields nothing, the reason it gives (host.noop).
- ``uploaded``: ``{path: [text, ...]}``, what the file uploaded to ``path`` must contain.
"""

import importlib
import json
from pathlib import Path

import pytest

from support import CLUSTER_FILES, FakeHosts, local_copy, shell_syntax_ok

CASES_DIR = Path(__file__).resolve().parent
CASES = [(d.name, p) for d in sorted(CASES_DIR.iterdir()) if d.is_dir() and "." in d.name
         for p in sorted(d.glob("*.json"))]
KEYS = {"args", "cluster", "host", "facts", "other_hosts", "executing", "commands", "noop", "uploaded"}


def fact_class(name):
    module, cls = name.split(".")
    try:
        return getattr(importlib.import_module(f"facts.{module}"), cls)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(f"pyinfra.facts.{module}"), cls)


def argument_key(kwargs):
    return ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(kwargs.items()))


def fact_table(facts):
    """{fact class: value or a callable of the fact's arguments}."""
    table = {}
    for name, value in facts.items():
        if isinstance(value, dict) and value and all("=" in key for key in value):
            def by_arguments(_values=value, _name=name, **kwargs):
                key = argument_key(kwargs)
                assert key in _values, f"{_name}: no fake value for {key!r} (have {sorted(_values)})"
                return _values[key]
            table[fact_class(name)] = by_arguments
        else:
            table[fact_class(name)] = value
    return table


def resolve(value, cluster):
    if isinstance(value, str) and value == "@cluster":
        return cluster
    if isinstance(value, str) and value.startswith("@node:"):
        return cluster.host(value.split(":", 1)[1])
    if isinstance(value, list):
        return [resolve(item, cluster) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, cluster) for key, item in value.items()}
    return value


def operation(name):
    module, op = name.split(".")
    return getattr(importlib.import_module(f"operations.{module}"), op)


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}/{p.stem}" for n, p in CASES])
def test_case(name, path, tmp_path, monkeypatch):
    case = json.loads(path.read_text())
    assert set(case) <= KEYS, f"unknown keys: {set(case) - KEYS}"
    cluster = None
    names = [case.get("host", "n1")]
    if "cluster" in case:
        from cluster import load_checked

        monkeypatch.setenv("KUBEHA_CLUSTER", str(local_copy(CLUSTER_FILES[case["cluster"]], tmp_path)))
        monkeypatch.setenv("KUBEHA_STATE_DIR", str(tmp_path / "state"))
        load_checked.cache_clear()
        cluster = load_checked()
        names = [h.name for h in cluster.hosts]
    me = case.get("host", names[0])
    others = case.get("other_hosts", {})
    facts = {n: fact_table(case.get("facts", {}) if n == me else others.get(n, {})) for n in names}
    hosts = FakeHosts(facts)
    try:
        commands = hosts.run(operation(name), me, executing=case.get("executing", True),
                             **resolve(case.get("args", {}), cluster))
    finally:
        if cluster is not None:
            load_checked.cache_clear()
    assert commands == case["commands"]
    shell_syntax_ok(commands)
    if "noop" in case:
        assert commands == [] and hosts.noops == [case["noop"]], hosts.noops
    for dest, texts in case.get("uploaded", {}).items():
        assert all(text in hosts.uploads[dest] for text in texts), hosts.uploads[dest]


def test_case_directories_name_real_operations():
    for name in {name for name, _ in CASES}:
        assert hasattr(operation(name), "_inner"), f"{name} is not an operation"
