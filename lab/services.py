"""The mirror on the gateway: file server (:8080), OCI registry (:5000), apt proxy (:3142).

Each runs in its own session with a pid file under /var/lib/kubeha-lab/run, bound to the
gateway address only."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .config import LabConfig
from .machine_apt import Mirror
from .machines import port_open
from .proc import LabError, cmdline, python_argv, read_pidfile, spawn, terminate


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    marker: str  # a word of its command line, so a reused pid is never mistaken for it

    @property
    def pidfile(self) -> Path:
        return paths.RUN / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return paths.RUN / f"{self.name}.log"

    def pid(self) -> int | None:
        pid = read_pidfile(self.pidfile)
        if pid is None or not any(self.marker in a for a in cmdline(pid)):
            return None
        return pid


FILES = Service("files", paths.FILES_PORT, "files")
REGISTRY = Service("registry", paths.REGISTRY_PORT, "registry")
APT_PROXY = Service("apt-proxy", paths.APT_PROXY_PORT, "apt-proxy")
ALL = (FILES, REGISTRY, APT_PROXY)


def registry_config(lab: LabConfig) -> str:
    return f"""\
# docker-registry (distribution) of the kubeha lab; not the package's own service.
version: 0.1
log:
  level: info
  fields:
    service: kubeha-lab-registry
storage:
  filesystem:
    rootdirectory: {paths.REGISTRY_DATA}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {lab.gateway}:{paths.REGISTRY_PORT}
  headers:
    X-Content-Type-Options: [nosniff]
"""


def _argv(svc: Service, lab: LabConfig, mirror: Mirror) -> list[str]:
    listen = f"{lab.gateway}:{svc.port}"
    if svc is FILES:
        return python_argv("lab.servers", "files", "--listen", listen, "--root", str(paths.ARTIFACT_FILES))
    if svc is APT_PROXY:
        allow = []
        for url in mirror.allowed():
            allow += ["--allow", url]
        return python_argv("lab.servers", "apt-proxy", "--listen", listen, *allow, "--cache", str(paths.APT_CACHE))
    conf = paths.RUN / "registry.yml"
    conf.write_text(registry_config(lab))
    return ["docker-registry", "serve", str(conf)]


def ensure(lab: LabConfig, mirror: Mirror, progress) -> None:
    """Start whichever service is not running, then wait until each answers on its port."""
    paths.RUN.mkdir(parents=True, exist_ok=True)
    paths.ARTIFACT_FILES.mkdir(parents=True, exist_ok=True)
    paths.REGISTRY_DATA.mkdir(parents=True, exist_ok=True)
    started = []
    for svc in ALL:
        if svc.pid() is not None and port_open(lab.gateway, svc.port, 0.5):
            continue
        stop(svc)
        if port_open(lab.gateway, svc.port, 0.5):
            raise LabError(f"something else already listens on {lab.gateway}:{svc.port}")
        env = {"PYTHONPATH": str(paths.REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        spawn(_argv(svc, lab, mirror), svc.pidfile, svc.logfile, env=env)
        started.append(svc)
    deadline = time.monotonic() + 20
    for svc in started:
        while not port_open(lab.gateway, svc.port, 0.5):
            if svc.pid() is None or time.monotonic() > deadline:
                tail = svc.logfile.read_text(errors="replace").splitlines()[-10:] if svc.logfile.exists() else []
                raise LabError(f"{svc.name} did not start on {lab.gateway}:{svc.port}:\n" + "\n".join(tail))
            time.sleep(0.1)
        progress("mirror", None, f"{svc.name} listening on {lab.gateway}:{svc.port} (pid {svc.pid()})")


def stop(svc: Service) -> bool:
    pid = svc.pid()
    if pid is not None:
        terminate(pid, signal.SIGTERM, timeout=10)
    svc.pidfile.unlink(missing_ok=True)
    return pid is not None
