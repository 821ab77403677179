"""The etcd stage against real etcd: three members on loopback addresses of this machine.

Needs the built etcd release (`python3 -m artifacts build` puts it under
/var/cache/kubeha-lab/artifacts/files/); skipped without it. Nothing leaves loopback.

Each member runs the ExecStart of its rendered unit (templates/etcd.service.j2) with the
certificates of a fresh local state (cluster/secrets.py), systemd stripped: the environment
file is expanded by hand and the process is started here. Two things differ from a real host,
because three members share this machine's 127.0.0.1: the listeners the unit puts on
127.0.0.1 (the extra client URL and the metrics URL) are put on the member's own address, and
the data and PKI dirs are per member under a temporary dir.

The membership operations then run for real: their facts are the facts' own commands
(facts/etcd.py) run here, their commands are run here, `systemctl` is played by this file.
"""

import configparser
import json
import os
import shlex
import signal
import subprocess
import tarfile
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from support import local_copy
from pyinfra.api import Config, FileUploadCommand, Inventory, State
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, FileContents, Sha256File
from pyinfra.facts.server import TmpDir
from pyinfra.facts.systemd import SystemdStatus

from cluster import etcd as etcd_plan, load_checked, paths
from cluster.secrets import ClusterSecrets
from facts.etcd import EtcdHealth, EtcdLogLost, EtcdMembers
from operations import etcd as ops

pytestmark = pytest.mark.artifacts

VERSION = "3.6.14"
ARCHIVE = Path("/var/cache/kubeha-lab/artifacts/files/github.com/etcd-io/etcd/releases/download/"
               f"v{VERSION}/etcd-v{VERSION}-linux-amd64.tar.gz")
ADDRESSES = {"cp1": "127.0.0.21", "cp2": "127.0.0.22", "cp3": "127.0.0.23"}
PKI_FILES = ("ca.crt", "server.crt", "server.key", "peer.crt", "peer.key", "admin-client.crt",
             "admin-client.key")


def exec_start(unit_text):
    """The argv of a unit's ExecStart (continuation lines joined)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(unit_text)
    return shlex.split(parser["Service"]["ExecStart"].replace("\\\n", " ").replace("\\", " "))


class LocalMembers:
    """Three etcd processes playing the three hosts; also their facts and their systemctl."""

    def __init__(self, root, bin_dir, cluster, secrets):
        self.root, self.bin_dir, self.cluster, self.secrets = root, bin_dir, cluster, secrets
        self.processes, self.env, self.applied = {}, {}, {}
        self.inventory = Inventory(([f"@fake/{n}" for n in ADDRESSES], {}))
        self.state = State(self.inventory, Config())
        for host in self.inventory:
            host.get_fact = self._facts(host.name.split("/")[1])
        for name in ADDRESSES:
            pki = self.etcd(name).pki_dir
            os.makedirs(pki, mode=0o700)
            for file_name in PKI_FILES:
                Path(pki, file_name).write_bytes(self._local_pki(name, file_name).read_bytes())

    def etcd(self, name):
        """The cluster as member `name` sees it: its data and PKI dirs are its own here."""
        return etcd_plan.from_cluster(self.cluster, {n: f"@fake/{n}" for n in ADDRESSES},
                                data_dir=str(self.root / name / "data"), pki_dir=str(self.root / name / "pki"))

    def _local_pki(self, name, file_name):
        node = self.cluster.host(name)
        pairs = {"ca": self.secrets.etcd_ca, "server": self.secrets.etcd_member(node, "server"),
                 "peer": self.secrets.etcd_member(node, "peer"), "admin-client": self.secrets.etcd_admin_client}
        stem, suffix = file_name.rsplit(".", 1)
        return pairs[stem].cert if suffix == "crt" else pairs[stem].key

    # the facts, answered by running their commands here
    def _facts(self, name):
        def get_fact(cls, *args, **kwargs):
            if cls in (EtcdMembers, EtcdHealth):
                fact = cls()
                out = self.sh(fact.command(**kwargs), check=False).stdout.splitlines()
                return fact.process(out) if out else fact.default()
            if cls is Directory:
                return {"user": "root", "group": "root", "mode": 700} if os.path.isdir(kwargs["path"]) else None
            if cls is EtcdLogLost:  # the member's log file plays its journal
                fact, journal = cls(), "journalctl -u etcd -o cat --no-pager -n 2000"
                assert journal in fact.command()
                command = fact.command().replace(journal, f"tail -n 2000 {self.root / f'{name}.log'}")
                return fact.process(self.sh(command, check=False).stdout.splitlines())
            if cls is SystemdStatus:
                return {"etcd.service": self.running(name)}
            if cls is FileContents:
                text = {paths.ETCD_ENV_FILE: self.env.get(name), paths.ETCD_APPLIED_FILE: self.applied.get(name)}[kwargs["path"]]
                return text.splitlines() if text else None
            if cls in (Sha256File, TmpDir):
                return None
            raise AssertionError(f"unexpected fact {cls.__name__}")
        return get_fact

    def sh(self, command, check=True, timeout=240):
        env = {**os.environ, "PATH": f"{self.bin_dir}:{os.environ['PATH']}"}
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, check=check,
                              timeout=timeout)

    # systemctl start / stop / restart etcd
    def running(self, name):
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def argv(self, name):
        etcd = self.etcd(name)
        address = ADDRESSES[name]
        unit = etcd_plan.unit(etcd, name, bin_dir=str(self.bin_dir))
        values = dict(line.split("=", 1) for line in self.env[name].splitlines()
                      if line and not line.startswith("#"))
        argv = [arg.replace("${INITIAL_CLUSTER}", values["INITIAL_CLUSTER"])
                .replace("${INITIAL_CLUSTER_STATE}", values["INITIAL_CLUSTER_STATE"]) for arg in exec_start(unit)]
        # this machine's 127.0.0.1 is shared by the three members: their own address instead
        return [arg.replace("https://127.0.0.1:2379", f"https://{address}:2379")
                .replace("http://127.0.0.1:2381", f"http://{address}:2381") for arg in argv]

    def start(self, name):
        if self.running(name):
            return
        log = open(self.root / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(self.argv(name), stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def stop(self, name):
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self):
        for name in list(self.processes):
            self.stop(name)

    # an operation's body for one member, then its commands run here
    def commands(self, op, name, **kwargs):
        """The commands of `op` on member `name`; the body reads its facts before its first command."""
        host = self.inventory.get_host(f"@fake/{name}")
        self.state.is_executing = True
        result = []
        with ctx_state.use(self.state), ctx_host.use(host):
            for command in op._inner(etcd=self.etcd(name), member=name, **kwargs):
                result.append(command if isinstance(command, FileUploadCommand) else str(command))
        return result

    def execute(self, name, commands):
        ran = []
        for command in commands:
            if isinstance(command, FileUploadCommand):
                assert command.dest.endswith(".initial-cluster.env.kubeha-new"), command.dest
                self.env[name] = command.src.getvalue().decode()
                continue
            ran.append(command)
            if command == "systemctl start --no-block etcd":
                self.start(name)
            elif command == "systemctl stop etcd":
                self.stop(name)
            elif command == "systemctl restart etcd":
                self.stop(name)
                self.start(name)
            elif command.startswith(("mkdir -p /etc/etcd", "chmod 0644 /etc/etcd/")):
                continue  # the environment file is kept in self.env
            elif command.startswith("echo ") and command.endswith(paths.ETCD_APPLIED_FILE):
                self.applied[name] = command.split()[1]
            else:
                result = self.sh(command, check=False)
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}\n{self.logs(name)}"
        return ran

    def execute_together(self, planned):
        """{member: commands} run on the members at the same time, as pyinfra runs one operation
        on every host: in one thread each."""
        errors = []

        def execute(name):
            try:
                self.execute(name, planned[name])
            except AssertionError as error:  # pragma: no cover - reported below
                errors.append(error)
        threads = [threading.Thread(target=execute, args=(n,)) for n in planned]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=200)
        assert not errors, errors[0]

    def run_op(self, op, name, **kwargs):
        return self.execute(name, self.commands(op, name, **kwargs))

    def logs(self, name):
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def etcdctl(self, name, args, endpoints=None):
        etcd = self.etcd(name)
        return self.sh(etcd.etcdctl(endpoints or etcd.endpoints, args), check=False)


@contextmanager
def local_members(root, **knobs):
    """LocalMembers of the lab's HA cluster file moved onto loopback, under `root`, with the
    release's etcd, etcdctl and etcdutl; `knobs` ("section.key": value) change the cluster file.
    Skips without the built release; stops the members at the end."""
    if not ARCHIVE.is_file():
        pytest.skip(f"the etcd release is not built: {ARCHIVE}")
    bin_dir = root / "opt"
    bin_dir.mkdir()
    with tarfile.open(ARCHIVE) as archive:  # like unpack(strip_components=1)
        for entry in archive.getmembers():
            if entry.name.count("/") == 1 and entry.name.rsplit("/", 1)[1] in ("etcd", "etcdctl", "etcdutl"):
                entry.name = entry.name.rsplit("/", 1)[1]
                archive.extract(entry, bin_dir, filter="data")
    source = local_copy(Path(__file__).resolve().parents[2] / "lab" / "clusters" / "ha.yaml", root, **knobs)
    data = yaml.safe_load(source.read_text())
    for entry in data["hosts"]:
        entry["address"] = entry["address"].replace("10.123.0.", "127.0.0.")
    data.update(name="etcd-real")
    data["network"]["node_cidr"] = "127.0.0.0/24"
    data["api"]["vip"] = "127.0.0.10"
    data.pop("offline", None)
    source.write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBEHA_STATE_DIR", str(root / "state"))
        cluster = load_checked(str(source))
        assert [(h.name, h.address) for h in cluster.etcd_hosts] == list(ADDRESSES.items())
        local = LocalMembers(root, bin_dir, cluster, ClusterSecrets(cluster).ensure())
        try:
            yield local
        finally:
            local.stop_all()


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    with local_members(tmp_path_factory.mktemp("etcd-real")) as local:
        yield local


def cluster_health(members, via="cp1"):
    """`etcdctl endpoint health --cluster` over TLS: (healthy endpoints, output)."""
    result = members.etcdctl(via, "endpoint health --cluster -w json")
    try:
        healthy = sorted(e["endpoint"] for e in json.loads(result.stdout) if e["health"])
    except ValueError:
        healthy = []
    return healthy, result.stdout + result.stderr


ALL = sorted(f"https://{address}:2379" for address in ADDRESSES.values())


def test_a_new_cluster_bootstraps_with_every_member_at_once(members):
    for name in ADDRESSES:
        members.run_op(ops.decide_bootstrap, name)
    assert all("INITIAL_CLUSTER_STATE=new" in members.env[n] for n in ADDRESSES)
    planned = {name: members.commands(ops.start, name, applied="v1") for name in ADDRESSES}
    assert all(c[0] == "systemctl start --no-block etcd" for c in planned.values()), planned
    members.execute_together(planned)
    healthy, output = cluster_health(members)
    assert healthy == ALL, output
    # and nothing more to do: every operation is now a noop
    for name in ADDRESSES:
        assert members.run_op(ops.decide_bootstrap, name) == []
        assert members.run_op(ops.start, name, applied="v1") == []
        assert members.run_op(ops.join, name, applied="v1") == []
        assert members.run_op(ops.restart_changed, name, applied="v1") == []


def test_a_replaced_member_is_removed_and_added_again_as_a_learner_then_promoted(members):
    members.stop("cp3")
    old_id = next(m["ID"] for m in json.loads(members.etcdctl("cp1", "member list -w json").stdout)["members"]
                  if m["name"] == "cp3")
    subprocess.run(["rm", "-rf", str(members.root / "cp3" / "data")], check=True)
    # the stopped member does not hold up the others
    assert members.run_op(ops.start, "cp1", applied="v1") == []
    ran = members.run_op(ops.join, "cp3", applied="v1")
    assert any(f"member remove {format(old_id, 'x')} ||" in c for c in ran), ran
    assert any("member add cp3" in c and "--learner" in c for c in ran), ran
    assert "INITIAL_CLUSTER_STATE=existing" in members.env["cp3"]
    listed = json.loads(members.etcdctl("cp1", "member list -w json").stdout)["members"]
    assert sorted(m["name"] for m in listed) == ["cp1", "cp2", "cp3"]
    assert not any(m.get("isLearner") for m in listed), listed
    healthy, output = cluster_health(members)
    assert healthy == ALL, output
    assert members.run_op(ops.join, "cp3", applied="v1") == []


def test_changed_members_restart_one_at_a_time_and_never_below_quorum(members):
    members.stop("cp3")
    # cp3 is down: restarting cp1 would leave one of three, so it is put off
    assert members.run_op(ops.restart_changed, "cp1", applied="v2") == []
    members.start("cp3")
    members.sh(ops._wait_healthy(members.etcd("cp3"), members.etcd("cp3").member("cp3")))
    for name in ADDRESSES:  # what _serial=True does: one member after the other
        before = members.processes[name].pid
        ran = members.run_op(ops.restart_changed, name, applied="v2")
        assert ran[0] == "systemctl restart etcd", ran
        assert members.processes[name].pid != before
        healthy, output = cluster_health(members)
        assert healthy == ALL, output
    assert all(members.run_op(ops.restart_changed, n, applied="v2") == [] for n in ADDRESSES)
