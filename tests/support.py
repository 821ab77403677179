"""The tests' harness: the shipped cluster files made loadable here, pyinfra planned or "run"
against fake hosts (a subprocess on the @fake connector, or an operation's body in-process
with canned facts), and the lab tiers' waiting helpers.

Every test that needs a cluster, a plan or a fake host comes through here, so a change in how
the deploy is run is made once.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_FILES = {
    "topology-a": PROJECT / "examples" / "topology-a.yaml",
    "topology-b": PROJECT / "examples" / "topology-b.yaml",
    "lab-ha": PROJECT / "lab" / "clusters" / "ha.yaml",
    "lab-compact": PROJECT / "lab" / "clusters" / "compact.yaml",
}
FAKE_INVENTORY = "tests/plan/fake_inventory.py"


# ---------------------------------------------------------------------------------------------
# Cluster files

def local_copy(source, directory, **overrides):
    """A copy of a cluster file whose local paths (SSH key, known_hosts, checksums) exist here.

    The copy keeps every setting; only files this machine must read are pointed at stand-ins,
    and a lab checksums file is left out so the pinned upstream checksums apply. `overrides`
    set `section.key` (or a top-level key) to a value.
    """
    data = yaml.safe_load(Path(source).read_text())
    key = Path(directory) / "id_test"
    key.write_text("not a real key\n")
    data["ssh"]["key"] = str(key)
    if data["ssh"].get("known_hosts_file"):
        known = Path(directory) / "known_hosts"
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
    path = Path(directory) / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def load(path):
    """The checked Cluster of a cluster file; fails the test on any problem."""
    from cluster.validation import validate

    loaded, problems = validate(path)
    assert not problems, problems
    return loaded


def cluster_copy(name, directory, **overrides):
    """A local copy of the shipped cluster file `name`, loaded: (Cluster, path)."""
    path = local_copy(CLUSTER_FILES[name], directory, **overrides)
    return load(path), path


@lru_cache(maxsize=None)
def shipped(name):
    """The shipped cluster file `name`, loaded once (read only: copy it to change it)."""
    return load(local_copy(CLUSTER_FILES[name], tempfile.mkdtemp(prefix=f"kubeha-{name}-")))


def shipped_where(predicate):
    """Names of the shipped cluster files whose cluster satisfies `predicate`, for
    parametrizing a test only over the files it applies to."""
    return [name for name in sorted(CLUSTER_FILES) if predicate(shipped(name))]


# ---------------------------------------------------------------------------------------------
# pyinfra against the @fake connector, in a subprocess

@dataclass
class FakeRun:
    """What one pyinfra run against the fake hosts said."""

    returncode: int
    output: str  # stdout and stderr
    # --dry: [(stage file or "", operation, [nodes with a change])], in order; the stage file is
    # named when several are planned together (deploy.py)
    planned: list = field(default_factory=list)

    @property
    def plan(self):
        """--dry: [(operation, [nodes with a change])], in order."""
        return [(name, nodes) for _, name, nodes in self.planned]

    @property
    def changes(self):
        """--dry: {operation: {nodes with a change}} of the operations that change something."""
        return {name: set(nodes) for name, nodes in self.plan if nodes}

    @property
    def sequence(self):
        """A run: [(node, command)] the fake hosts were given, in the order given, fact commands
        included."""
        return re.findall(r"^\[@fake/(\S+)\]\s+>>> (.*)$", self.output, re.M)

    @property
    def commands(self):
        """A run: {node: [command, ...]} the fake hosts were given, fact commands included."""
        result = {}
        for node, command in self.sequence:
            result.setdefault(node, []).append(command)
        return result

    def ran(self, node, pattern):
        """The commands given to `node` that match the regular expression `pattern`."""
        return [c for c in self.commands.get(node, []) if re.search(pattern, c)]


def fake_pyinfra(cluster_file, state_dir, tasks="deploy.py", responses=None, execute=False, diff=False,
                 check=True, timeout=300, env=None, data=()):
    """pyinfra on the cluster file's hosts behind the @fake connector (tests/plan/fake_inventory.py):
    `--dry --json -v` (the plan), or with `execute` `-y -vv` (the fake hosts record every command).

    `tasks`: deploy.py, an entry point (backup.py, restore.py, reset.py) or stage files,
    space-separated. `responses`: {node or "*": {substring of a fact command: output}}; anything
    not given answers as a fresh Debian 13 amd64 host; the nodes listed under "down" are not
    reached. `env`: more environment variables (e.g. a restore's KUBEHA_RESTORE_SNAPSHOT); none of
    this process's KUBEHA_* variables reaches the run. `data`: pyinfra's --data KEY=VALUE items.
    With `check`, a run that fails fails the test.
    """
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBEHA_")},
           "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(state_dir),
           "PYINFRA_FAKE_DELAY": "0", "PYINFRA_FAKE_DELAY_JITTER": "0", **(env or {})}
    if responses is not None:
        fake_state = Path(tempfile.mkstemp(prefix="fake-state-", suffix=".json", dir=state_dir.parent)[1])
        fake_state.write_text(json.dumps(responses))
        env["KUBEHA_FAKE_STATE"] = str(fake_state)
    argv = [sys.executable, "-m", "pyinfra", FAKE_INVENTORY, *tasks.split()]
    for item in data:
        argv += ["--data", item]
    # a plan's -v prints why each operation has nothing to do (host.noop), refusals included
    argv += ["-y", "-vv"] if execute else ["--dry", "--json", "-v"] + (["--diff"] if diff else [])
    result = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)
    run = FakeRun(result.returncode, result.stdout + result.stderr)
    if check:
        assert result.returncode == 0, run.output[-5000:]
    if not execute and result.returncode == 0:
        report = json.loads(result.stdout)
        run.output = result.stderr
        for op in report["plan"]:
            file, _, name = op["name"].rpartition(" | ")
            run.planned.append((file, name, sorted(h.removeprefix("@fake/") for h in op["hosts_with_change"])))
    return run


def sha256_response(path, content):
    """The fake answer of pyinfra's Sha256File fact for a file that holds `content`."""
    import hashlib

    data = content.encode() if isinstance(content, str) else content
    return {f"sha256sum {path} ": f"{hashlib.sha256(data).hexdigest()}  {path}"}


def stat_response(path, user, mode):
    """The fake answer of pyinfra's File and Directory facts for `path`, owned by `user` (and
    its group), `mode` as ls prints it (-rw-------, drwx------)."""
    return {f"%N' {path} ": f"user={user} group={user} mode={mode} atime=1 mtime=1 ctime=1 size=1 '{path}'"}


# ---------------------------------------------------------------------------------------------
# An operation's body in-process, on fake hosts with canned facts

class FakeHosts:
    """pyinfra hosts @fake/<name> whose facts come from a table, for running an operation's
    body as pyinfra does (once while planning, again when executing) and keeping what it yields.

    `facts`: {host name: {fact class: value}}; a value that is a callable is called with the
    fact's keyword arguments. `data`: {host name: host data} (node_name is set to the name).
    """

    def __init__(self, facts, data=None):
        from pyinfra.api import Config, Inventory, State

        names = list(facts)
        self.inventory = Inventory(([(f"@fake/{n}", {"node_name": n, **(data or {}).get(n, {})}) for n in names], {}))
        self.state = State(self.inventory, Config())
        self.state.active_hosts = set(self.inventory)
        self.facts = facts
        self.noops, self.uploads = [], {}
        for name in names:
            self.host(name).get_fact = self._answer(name)
            self.host(name).noop = self.noops.append

    def host(self, name):
        return self.inventory.get_host(f"@fake/{name}")

    def _answer(self, name):
        from pyinfra.facts.server import TmpDir

        def get_fact(cls, *args, **kwargs):
            if cls is TmpDir and cls not in self.facts[name]:
                return None  # pyinfra's own temporary directory, for uploads
            if cls not in self.facts[name]:
                raise AssertionError(f"{name}: no fake value for the fact {cls.__name__}({kwargs})")
            value = self.facts[name][cls]
            return value(**kwargs) if callable(value) else value
        return get_fact

    def down(self, name):
        """`name` cannot be reached: pyinfra has failed it."""
        self.state.active_hosts.discard(self.host(name))
        self.state.failed_hosts.add(self.host(name))

    def run(self, op, name, executing=True, **kwargs):
        """The commands `op` yields on host `name`: strings, "upload PATH" for a file (its content
        in self.uploads), the callable's name for a function command."""
        from pyinfra.api import FileUploadCommand, FunctionCommand

        self.state.is_executing = executing
        self.noops.clear()
        commands = []
        with self.context(name):
            for command in op._inner(**kwargs):
                if isinstance(command, FileUploadCommand):
                    self.uploads[command.dest] = command.src.getvalue().decode()
                    commands.append(f"upload {command.dest}")
                elif isinstance(command, FunctionCommand):
                    commands.append(f"function {command.function.__name__}")
                else:
                    commands.append(str(command))
        return commands

    def context(self, name):
        """The pyinfra context of host `name`, for calling helpers that read facts."""
        from contextlib import ExitStack

        from pyinfra.context import ctx_host, ctx_inventory, ctx_state

        stack = ExitStack()
        stack.enter_context(ctx_state.use(self.state))
        stack.enter_context(ctx_inventory.use(self.inventory))
        stack.enter_context(ctx_host.use(self.host(name)))
        return stack


def shell_syntax_ok(commands):
    """Each command (not an upload or a function) is valid sh."""
    for command in commands:
        if not command.startswith(("upload ", "function ")):
            subprocess.run(["sh", "-n", "-c", command], check=True)


# ---------------------------------------------------------------------------------------------
# The lab tiers: pyinfra for real, and waiting for the machines

def failed_hosts_lines(output, failed, most=80):
    """What pyinfra printed for the failed hosts: their lines of the whole run, which the output's
    tail alone may no longer hold (a long run prints every later stage after the error)."""
    prefixes = tuple(f"[{name}]" for name in failed)
    lines = [line for line in output.splitlines() if line.strip().startswith(prefixes)
             and line.strip().partition("]")[2].strip() not in ("Success", "No changes", "Skipped")]
    return "the failed hosts' lines:\n" + "\n".join(lines[-most:])


def run_pyinfra(deploy, cluster_file, state_dir, dry=False, inventory="inventory.py", timeout=3000, down=()):
    """Runs pyinfra on the cluster file's hosts. Returns {operation name: set of hosts} of
    the operations that would change (dry) or changed something (real run), and the output.

    `down`: machines known to be stopped. pyinfra cannot connect to them and says so with exit
    status 1; the run counts as a success when they are the only failed hosts."""
    env = {**os.environ, "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(state_dir)}
    argv = [sys.executable, "-m", "pyinfra", inventory, deploy, "--json"] + (["--dry"] if dry else ["-y"])
    result = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"pyinfra failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    if dry:
        changes = {op["name"]: set(op["hosts_with_change"]) for op in report["plan"]}
    else:
        results = report["results"]
        assert result.returncode == (1 if down else 0) and set(results["failed_hosts"]) == set(down), \
            f"pyinfra failed ({result.returncode}): {results['failed_hosts']}\n" \
            f"{failed_hosts_lines(result.stderr, results['failed_hosts'])}\n{result.stderr[-5000:]}"
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
