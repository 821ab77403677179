"""Helpers shared by the tests: the shipped cluster files, made loadable on this machine."""

import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_FILES = {
    "topology-a": PROJECT / "examples" / "topology-a.yaml",
    "topology-b": PROJECT / "examples" / "topology-b.yaml",
    "lab-ha": PROJECT / "lab" / "clusters" / "ha.yaml",
    "lab-compact": PROJECT / "lab" / "clusters" / "compact.yaml",
}


def local_copy(source, directory, **overrides):
    """A copy of a cluster file whose local paths (SSH key, known_hosts, checksums) exist here.

    The copy keeps every setting; only files this machine must read are pointed at stand-ins,
    and a lab checksums file is left out so the pinned upstream checksums apply.
    """
    data = yaml.safe_load(Path(source).read_text())
    key = directory / "id_test"
    key.write_text("not a real key\n")
    data["ssh"]["key"] = str(key)
    if data["ssh"].get("known_hosts_file"):
        known = directory / "known_hosts"
        known.write_text("")
        data["ssh"]["known_hosts_file"] = str(known)
    if data.get("offline", {}).get("checksums_file"):
        del data["offline"]["checksums_file"]
    for dotted, value in overrides.items():
        section, _, key_name = dotted.partition(".")
        if key_name:
            data.setdefault(section, {})[key_name] = value
        else:
            data[section] = value
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_pyinfra(deploy, cluster_file, state_dir, dry=False, inventory="inventory.py", timeout=3000, down=()):
    """Runs pyinfra on the cluster file's hosts. Returns {operation name: set of hosts} of
    the operations that would change (dry) or changed something (real run), and the output.

    `down`: machines known to be stopped. pyinfra cannot connect to them and says so with exit
    status 1; the run counts as a success when they are the only failed hosts."""
    import json
    import os
    import subprocess
    import sys

    project = Path(__file__).resolve().parent.parent
    env = {**os.environ, "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(state_dir)}
    argv = [sys.executable, "-m", "pyinfra", inventory, deploy, "--json"] + (["--dry"] if dry else ["-y"])
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"pyinfra failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    if dry:
        changes = {op["name"]: set(op["hosts_with_change"]) for op in report["plan"]}
    else:
        results = report["results"]
        assert result.returncode == (1 if down else 0) and set(results["failed_hosts"]) == set(down), \
            f"pyinfra failed ({result.returncode}): {results['failed_hosts']}\n{result.stderr[-5000:]}"
        changes = {op["name"]: set(op["success"]) for op in results["operations"]}
    return {name: hosts for name, hosts in changes.items() if hosts}, result.stderr


def wait_until(condition, timeout, interval=1.0):
    """The first truthy value of `condition()` within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def vip_holders(lab, vip, candidates):
    """The lab hosts among `candidates` (names) that have `vip` on an interface right now."""
    return [name for name in candidates
            if f" {vip}/" in lab.ssh(name, "ip -o -4 addr show", check=False).stdout]
