"""Data-driven tests of kubeha's facts, in the manner of pyinfra's own.

Each ``tests/facts/<module>.<Fact>/<case>.json`` holds ``arg`` (the fact's arguments, if
any), ``output`` (the lines the command printed) and ``fact`` (what process() must make of
them). ``recorded_*`` cases were printed by the real tools, ``stubapi_*`` by the real client
(kubectl, curl) against a stub API answering with hand-written objects (tests/facts/stubapi.py),
``handwritten_*`` were written by hand from the tools' documented formats.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import FactBase, StringCommand

CASES_DIR = Path(__file__).resolve().parent
MODULES = ("kubernetes", "etcd", "loadbalancer", "containerd", "host", "services", "api", "backup")


def case_files() -> list[tuple[str, Path]]:
    """Every ``<module>.<Fact>/<case>.json`` under tests/facts, as (fact name, path)."""
    return [
        (directory.name, path)
        for directory in sorted(CASES_DIR.iterdir())
        if directory.is_dir() and "." in directory.name
        for path in sorted(directory.glob("*.json"))
    ]


CASES = case_files()

# Commands that would print a secret: a private key, a token or a whole Secret.
SECRET_PATTERNS = [
    r"\b(cat|head|tail|less|more|base64)\b[^;|&]*\.key\b",
    r"\bopenssl\s+(rsa|pkey|ec|genpkey)\b",
    r"token-secret",
    r"get\s+secrets?\b[^;|&]*-o\s*=?\s*(json|yaml|wide|jsonpath)",
    r"\bconfig\s+view\b[^;|&]*--raw",
    r"--show-secrets",
    r"\betcdctl\b[^;|&]*\s(get|watch)\s",
    r"\bbase64\s+(-d|--decode)\b",
]


def fact_class(name: str) -> type[FactBase]:
    module_name, class_name = name.split(".")
    return getattr(importlib.import_module(f"facts.{module_name}"), class_name)


def all_facts() -> list[type[FactBase]]:
    facts = []
    for module_name in MODULES:
        module = importlib.import_module(f"facts.{module_name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, FactBase) and cls is not FactBase and cls.__module__ == module.__name__:
                facts.append(cls)
    return facts


def run_like_pyinfra(fact: FactBase, output: list[str]):
    """pyinfra calls process() only for non-empty output, else answers default()."""
    return fact.process(output) if output else fact.default()


def render(fact: FactBase, arg: dict) -> str:
    command = fact.command(**arg)
    assert isinstance(command, (str, StringCommand))
    return str(command)


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}/{p.stem}" for n, p in CASES])
def test_case(name: str, path: Path, load_case) -> None:
    case = load_case(path)
    assert set(case) <= {"arg", "output", "fact"}, "unknown keys in the case file"
    fact = fact_class(name)()
    arg = case.get("arg", {})

    command = render(fact, arg)
    assert command.strip()
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, command), f"command may print a secret ({pattern})"
    requires = fact.requires_command(**arg)
    assert requires is None or isinstance(requires, str)

    result = run_like_pyinfra(fact, case["output"])
    # The fact as the deploy will see it, compared as JSON (tuples and lists alike).
    assert json.loads(json.dumps(result)) == case["fact"]


@pytest.mark.parametrize("cls", all_facts(), ids=lambda cls: cls.__name__)
def test_every_fact_has_cases(cls: type[FactBase]) -> None:
    fact_name = f"{cls.__module__.split('.')[-1]}.{cls.__name__}"
    count = sum(1 for name, _ in CASES if name == fact_name)
    assert count >= 3, f"{cls.__name__} has {count} cases, want at least 3"


def test_case_directories_name_real_facts() -> None:
    for name in {name for name, _ in CASES}:
        assert issubclass(fact_class(name), FactBase), name


def _first_args() -> list[tuple[type[FactBase], dict]]:
    seen: dict[str, dict] = {}
    for name, path in CASES:
        if name not in seen:
            with path.open() as f:
                seen[name] = json.load(f).get("arg", {})
    return [(fact_class(name), arg) for name, arg in sorted(seen.items())]


SHELL = shutil.which("dash") or shutil.which("sh")


@pytest.mark.parametrize(("cls", "arg"), _first_args(), ids=lambda v: getattr(v, "__name__", ""))
def test_command_is_valid_posix_sh(cls: type[FactBase], arg: dict) -> None:
    fact = cls()
    command = render(fact, arg)
    requires = fact.requires_command(**arg)
    if requires:  # as pyinfra wraps it
        command = f"if command -v {requires} >/dev/null 2>&1; then ( {command} ); else echo x; fi"
    check = subprocess.run([SHELL, "-n", "-c", command], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


JUNK = [
    [""],
    ["garbage"],
    ["{", '"items": ['],
    ["#kubeha:unreachable"],
    ["#kubeha:", "#kubeha:x y z", "null"],
    ['{"items": [null, 1, "x", {"metadata": null}]}'],
    ["[1, 2]", "token - -", "token !!! ???"],
]


@pytest.mark.parametrize("cls", all_facts(), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("output", JUNK, ids=range(len(JUNK)))
def test_junk_output_does_not_raise(cls: type[FactBase], output: list[str]) -> None:
    # A fact that raises in process() stops the deploy; unreadable output must not.
    result = cls().process(output)
    json.dumps(result)
