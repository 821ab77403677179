"""The machine's own apt: which Debian mirror it uses, and installing what the lab needs.

The mirror URL is read at run time from the machine's apt sources; the lab never names a
mirror host itself.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .proc import LabError, run

SOURCES_DIR = Path("/etc/apt/sources.list.d")
SOURCES_LIST = Path("/etc/apt/sources.list")


@dataclass(frozen=True)
class Mirror:
    debian: str  # e.g. http://<host>/debian
    security: str | None  # e.g. http://<host>/debian-security, if the machine uses one

    def allowed(self) -> list[str]:
        return [u for u in (self.debian, self.security) if u]


def _deb822_entries(text: str):
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            k, sep, v = line.partition(":")
            if not sep:
                continue
            key = k.strip().lower()
            fields[key] = v.strip()
        if not fields or fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


def _one_line_entries(text: str):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = shlex.split(line)
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words.pop(0) if words else None
        if len(words) >= 2:
            yield words[0], [words[1]]


def source_entries() -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled `deb` source of the machine's apt."""
    entries: list[tuple[str, list[str]]] = []
    if SOURCES_LIST.is_file():
        entries += _one_line_entries(SOURCES_LIST.read_text())
    if SOURCES_DIR.is_dir():
        for f in sorted(SOURCES_DIR.iterdir()):
            if f.suffix == ".sources":
                entries += _deb822_entries(f.read_text())
            elif f.suffix == ".list":
                entries += _one_line_entries(f.read_text())
    return entries


def find_mirror() -> Mirror:
    """The Debian archive (".../debian") and security archive the machine's apt uses."""
    debian = security = None
    for uri, _suites in source_entries():
        if not uri.startswith(("http://", "https://")):
            continue
        base = uri.rstrip("/")
        if base.endswith("/debian-security") and security is None:
            security = base
        elif base.endswith("/debian") and debian is None:
            debian = base
    if debian is None:
        raise LabError(
            "cannot find a Debian mirror (a URI ending in /debian) in the machine's apt sources "
            f"({SOURCES_LIST}, {SOURCES_DIR}/*.sources|*.list)"
        )
    return Mirror(debian, security)


def as_http(url: str) -> str:
    """What the hosts write in their sources: always plain http (the proxy fetches upstream
    with the machine's own scheme)."""
    return "http://" + url.split("://", 1)[1]


# ---- the machine's own packages ----------------------------------------------------------


def required_packages() -> list[str]:
    pkgs = []
    for line in paths.APT_REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkgs.append(line)
    return pkgs


def missing_packages(pkgs: list[str]) -> list[str]:
    missing = []
    for p in pkgs:
        cp = run(["dpkg-query", "-W", "-f=${Status}", p], check=False)
        if cp.returncode != 0 or "install ok installed" not in cp.stdout:
            missing.append(p)
    return missing


def install_packages(pkgs: list[str], progress=None) -> None:
    """apt-get install PKGS on the machine without starting their services (the lab runs
    its own instances bound to the lab address)."""
    if not pkgs:
        return
    if progress:
        progress("packages", None, f"installing on the machine: {' '.join(pkgs)}")
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# kubeha lab: no service starts while it installs packages\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        cp = run(["apt-get", "install", "-y", "--no-install-recommends", *pkgs], check=False, env=env, timeout=900)
        if cp.returncode != 0:
            run(["apt-get", "update"], env=env, timeout=600)
            run(["apt-get", "install", "-y", "--no-install-recommends", *pkgs], env=env, timeout=900)
    finally:
        if made_policy:
            try:
                os.unlink(policy)
            except OSError:
                pass


def ensure_packages(progress=None) -> None:
    install_packages(missing_packages(required_packages()), progress)
