"""Facts about containerd on a host: its version, whether it runs, what its config sets, and the
registry hosts files kubeha wrote."""

from __future__ import annotations

import re
import shlex
import tomllib

from pyinfra.api import FactBase
from typing_extensions import override

from facts.common import MARKER, dig, sections

CONFIG = "/etc/containerd/config.toml"

# Lines of the config that may hold registry credentials are never printed.
_SECRET_KEYS = "username|password|auth|identitytoken|registrytoken|token"


def _config_values(config: dict) -> tuple[bool, str | None]:
    """(SystemdCgroup for runc, the sandbox image or None when unset) per config version."""
    plugins = config.get("plugins") or {}
    version = config.get("version")
    if version == 3:  # containerd 2.x
        runtime = plugins.get("io.containerd.cri.v1.runtime")
        sandbox = dig(plugins, "io.containerd.cri.v1.images", "pinned_images", "sandbox")
    elif version == 2:  # containerd 1.x, also read by 2.x
        runtime = plugins.get("io.containerd.grpc.v1.cri")
        sandbox = dig(plugins, "io.containerd.grpc.v1.cri", "sandbox_image")
    else:
        return False, None
    systemd = dig(runtime, "containerd", "runtimes", "runc", "options", "SystemdCgroup")
    return systemd is True, sandbox if isinstance(sandbox, str) and sandbox else None


class ContainerdState(FactBase[dict | None]):
    """
    containerd's version (``containerd --version``), whether its unit is active
    (``systemctl is-active containerd``) and, from /etc/containerd/config.toml, whether runc
    uses the systemd cgroup driver, the sandbox (pause) image and the config ``version``.

    None when containerd is not installed. With no config file (or one that is not valid
    TOML, or of a version other than 2 or 3) ``systemd_cgroup`` is False and
    ``sandbox_image``/``config_version`` are None, as far as the file cannot tell.
    Lines with registry credentials are filtered out on the host. Drop-in files named by
    ``imports`` are not read.

    .. code:: python

        {
            "version": "2.2.3",
            "active": True,
            "systemd_cgroup": True,
            "sandbox_image": "registry.k8s.io/pause:3.10.1",
            "config_version": 3,
        }
    """

    @override
    def requires_command(self) -> str:
        return "containerd"

    @override
    def command(self) -> str:
        return (
            f"echo '{MARKER}version'; containerd --version 2>/dev/null || true; "
            f'echo "{MARKER}active $(systemctl is-active containerd 2>/dev/null)"; '
            f"if [ -r {CONFIG} ]; then echo '{MARKER}config'; "
            f"grep -v -i -E '^[[:space:]]*({_SECRET_KEYS})[[:space:]]*=' {CONFIG} || true; fi"
        )

    @override
    def process(self, output: list[str]) -> dict | None:
        parts = sections(output)
        if "version" not in parts:
            return None
        # "containerd github.com/containerd/containerd/v2 v2.2.3 <commit>"; the number only,
        # without build metadata ("2.2.3+unknown") or a packager's suffix ("1.6.20~ds1").
        match = re.search(r"\sv?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)", " ".join(parts["version"][1]))
        state = {
            "version": match.group(1) if match else None,
            "active": parts.get("active", ("", []))[0] == "active",
            "systemd_cgroup": False,
            "sandbox_image": None,
            "config_version": None,
        }
        if "config" in parts:
            try:
                config = tomllib.loads("\n".join(parts["config"][1]))
            except tomllib.TOMLDecodeError:
                return state
            version = config.get("version")
            state["config_version"] = version if isinstance(version, int) else None
            state["systemd_cgroup"], state["sandbox_image"] = _config_values(config)
        return state


class KubehaRegistryHosts(FactBase[dict]):
    """
    The registries of ``certs_dir`` whose hosts.toml kubeha wrote (its first line says
    "# Managed by kubeha"), as ``{registry: path}``; ``{}`` when there is none.

    .. code:: python

        {"docker.io": "/etc/containerd/certs.d/docker.io/hosts.toml"}
    """

    default = dict

    @override
    def command(self, certs_dir: str) -> str:
        return f"grep -l '^# Managed by kubeha' {shlex.quote(certs_dir)}/*/hosts.toml 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> dict:
        found = {}
        for line in output:
            path = line.strip()
            parts = path.rsplit("/", 2)
            if len(parts) == 3 and parts[2] == "hosts.toml" and parts[1]:
                found[parts[1]] = path
        return found
