"""A whole cluster deployed on a fresh lab by deploy.py, and the ways the e2e tests look at it:
kubectl as admin or as the kubectl user on the first control plane, kubectl from the lab's
gateway (this machine) through the VIP, and the lab's fault injection."""

from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from artifacts import layout
from cluster import load_checked
from lab.testing import LabHandle
from support import run_pyinfra, vip_holders, wait_until

ADMIN = "/etc/kubernetes/admin.conf"
DEPLOY = "deploy.py"


@dataclass
class DeployedCluster:
    lab: LabHandle
    state_dir: Path
    plan: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    stopped: dict = field(default_factory=dict)  # machine: how it was taken away
    removed: set = field(default_factory=set)  # nodes taken out of the cluster (remove:), until they come back

    @classmethod
    def fresh(cls, cluster_file: Path, state_dir: Path) -> "DeployedCluster":
        """Fresh lab machines of this topology (the running lab is taken down first), a --dry
        plan of deploy.py, then the deploy itself; both timed."""
        deployed = cls(LabHandle(cluster_file), state_dir)
        deployed.lab.down()
        deployed.lab.up()
        deployed.plan = deployed.timed("--dry on fresh machines", lambda: deployed.deploy(dry=True))
        deployed.changes = deployed.timed("full deploy", deployed.deploy)
        return deployed

    # ---- the deploy -------------------------------------------------------------------------

    def deploy(self, dry=False, down=(), cluster_file=None):
        """deploy.py on every machine but those in `down` (stopped), from the lab's cluster file or
        `cluster_file` (a copy that adds, removes or changes something)."""
        changes, _ = run_pyinfra(DEPLOY, cluster_file or self.lab.cluster_file, self.state_dir, dry=dry, down=down)
        return changes

    def timed(self, what, run):
        started = time.monotonic()
        result = run()
        self.times[what] = time.monotonic() - started
        print(f"\n{self.name}: {what}: {self.times[what]:.1f} s")
        return result

    # ---- the cluster file -------------------------------------------------------------------

    @property
    def definition(self):
        return load_checked(self.lab.cluster_file)

    @property
    def name(self) -> str:
        return self.lab.config.name

    def hosts_with_role(self, role):
        return [h.name for h in self.lab.hosts if role in h.roles]

    @property
    def nodes(self):
        return [h.name for h in self.lab.hosts if {"control_plane", "worker"} & set(h.roles)]

    @property
    def first_control_plane(self) -> str:
        return self.hosts_with_role("control_plane")[0]

    @property
    def running_control_plane(self) -> str:
        """The first control plane whose machine is not stopped or removed: where kubectl runs."""
        return next(h for h in self.hosts_with_role("control_plane") if h not in self.stopped and h not in self.removed)

    # ---- the machines -----------------------------------------------------------------------

    def stop(self, name: str, fault: str = "stop") -> None:
        """Takes a machine away: `stop` shuts it down cleanly, `cut` cuts its network link (to
        the others it looks like a crash)."""
        self.lab.cli(fault, name)
        self.stopped[name] = fault

    def start(self, name: str) -> None:
        """Brings back a machine `stop` took away."""
        self.lab.cli({"stop": "start", "cut": "heal"}[self.stopped.pop(name, "stop")], name)

    @property
    def vip(self) -> str:
        (vip,) = self.lab.config.vips
        return vip

    # ---- kubectl ----------------------------------------------------------------------------

    def kubectl(self, args: str, host: str | None = None, user: str | None = None, stdin: str | None = None,
                check=True, timeout=120):
        """kubectl ARGS on a control plane (the first running one by default), as admin
        (admin.conf) or as the Linux user `user` with its own ~/.kube/config."""
        host = host or self.running_control_plane
        if user:
            command = f"sudo -n -H -u {shlex.quote(user)} kubectl {args}"
        else:
            command = f"sudo -n kubectl --kubeconfig={ADMIN} {args}"
        result = subprocess.run([*self.lab.ssh_argv(host), command], input=stdin, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{host}: kubectl {args} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubectl_json(self, args: str, **kw):
        return json.loads(self.kubectl(f"{args} -o json", **kw).stdout)

    @property
    def user_kubeconfig(self) -> Path:
        """The kubectl user's kubeconfig the deploy keeps in the local state directory."""
        return self.state_dir / self.name / f"{self.definition.kubectl_user.name}.kubeconfig"

    def local_kubectl(self, args: list[str], check=True, timeout=30):
        """kubectl on this machine, the lab's gateway, through the VIP with the user's kubeconfig."""
        result = subprocess.run([str(layout.file_path("kubectl")), f"--kubeconfig={self.user_kubeconfig}", *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"local kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def api_answers_through_vip(self) -> bool:
        return self.local_kubectl(["get", "--raw=/healthz", "--request-timeout=2s"], check=False,
                                  timeout=10).stdout.strip() == "ok"

    # ---- state of the nodes -----------------------------------------------------------------

    def node_readiness(self, check=True) -> dict[str, bool]:
        """{node: Ready}; with check=False, {} while the API does not answer on the machine
        kubectl runs on (e.g. a control plane that has just started again)."""
        result = self.kubectl("get nodes -o json", check=check)
        if result.returncode != 0:
            return {}
        return {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in n["status"]["conditions"])
                for n in json.loads(result.stdout)["items"]}

    def all_ready(self, names) -> bool:
        """Every node named is Ready (a wait's condition: not yet while the API does not answer)."""
        readiness = self.node_readiness(check=False)
        return all(readiness.get(n) for n in names)

    def pods(self, namespace="kube-system", selector=None):
        args = f"get pods -n {namespace}" + (f" -l {shlex.quote(selector)}" if selector else "")
        return self.kubectl_json(args)["items"]

    def curl(self, host: str, url: str, timeout=10) -> str:
        """What `curl -sk URL` prints on a lab host ('' when it fails)."""
        return self.lab.ssh(host, f"curl -sk --max-time {timeout} {shlex.quote(url)}", check=False,
                            timeout=timeout + 30).stdout

    def apiserver_answers(self, host: str) -> bool:
        """Whether the apiserver on `host` answers /healthz (its certificate checked against the
        cluster's CA in the local state)."""
        context = ssl.create_default_context(cafile=str(self.state_dir / self.name / "pki" / "ca.crt"))
        url = f"https://{self.lab.host(host).address}:6443/healthz"
        try:
            with urllib.request.urlopen(url, context=context, timeout=3) as response:
                return response.read() == b"ok"
        except OSError:
            return False

    @contextmanager
    def apiserver_stopped(self, host: str):
        """The kube-apiserver static pod of `host` taken out while inside, put back after."""
        manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
        aside = "/etc/kubernetes/kube-apiserver.yaml.stopped-by-e2e"
        self.lab.sudo(host, f"mv {manifest} {aside}")
        try:
            assert wait_until(lambda: not self.apiserver_answers(host), 120), f"{host}'s apiserver still answers"
            yield
        finally:
            self.lab.sudo(host, f"mv {aside} {manifest}")
            assert wait_until(lambda: self.apiserver_answers(host), 180, interval=2), \
                f"{host}'s apiserver did not come back"

    def vip_holders(self) -> list[str]:
        """Who holds the VIP: an lb host (keepalived), else a control plane (kube-vip)."""
        return vip_holders(self.lab, self.vip, self.hosts_with_role("lb") or self.hosts_with_role("control_plane"))

    def stop_vip_holder(self, fault: str = "stop") -> "Failover":
        """Takes the machine holding the VIP away (`stop` or `cut`, see stop()) while the API is
        probed through the VIP every 0.2 s from another thread; the machine stays away. See
        Failover for what is measured."""
        holders = wait_until(self.vip_holders, 60)
        assert len(holders) == 1, f"the VIP is held by {holders}"
        with self.probed_through_vip() as probe:
            started = time.monotonic()
            self.stop(holders[0], fault)
            stopped = time.monotonic()
            assert wait_until(lambda: probe.answered_since(stopped), 180, interval=0.2), \
                f"the API does not answer through the VIP since {holders[0]} stopped"
        return Failover(holders[0], fault, stopped - started, probe.outage_seconds)

    @contextmanager
    def probed_through_vip(self):
        """The API probed through the VIP every 0.2 s from another thread while inside (it must
        answer first); yields the VipProbe."""
        assert wait_until(self.api_answers_through_vip, 60), "the API does not answer through the VIP"
        probe = VipProbe(self.api_answers_through_vip)
        probe.start()
        try:
            yield probe
        finally:
            probe.stop()


class VipProbe(threading.Thread):
    """Asks `answers()` every 0.2 s until stopped, keeping (time, answered) of each probe."""

    def __init__(self, answers):
        super().__init__(daemon=True)
        self.answers = answers
        self.probes = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.probes.append((time.monotonic(), self.answers()))
            time.sleep(0.2)

    def stop(self):
        self.done.set()
        self.join()

    def answered_since(self, moment):
        return any(ok for at, ok in self.probes if at > moment)

    @property
    def failures(self):
        return sum(1 for _, ok in self.probes if not ok)

    @property
    def outage_seconds(self):
        """The longest time the API did not answer: from a failed probe to the next answer (to the
        last probe if none came); 0 when no probe failed."""
        longest, failed_at = 0.0, None
        for at, ok in self.probes:
            if not ok and failed_at is None:
                failed_at = at
            elif ok and failed_at is not None:
                longest, failed_at = max(longest, at - failed_at), None
        if failed_at is not None:
            longest = max(longest, self.probes[-1][0] - failed_at)
        return longest


@dataclass
class Failover:
    """The VIP holder's machine taken away: how long that took, and how long the API did not
    answer through the VIP (from the first failed probe to the next answer; 0 when no probe
    failed)."""
    holder: str
    fault: str
    stop_seconds: float
    outage_seconds: float

    def __str__(self):
        return (f"{self.holder} {self.fault}: took {self.stop_seconds:.1f} s; the API did not answer through the VIP "
                f"for {self.outage_seconds:.1f} s (probed every 0.2 s)")


def workload_manifest(name: str, replicas: int, image: str) -> str:
    """An agnhost netexec Deployment with one pod per node (any taint tolerated) and its
    ClusterIP Service on port 80."""
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                   "whenUnsatisfiable": "DoNotSchedule",
                                                   "labelSelector": {"matchLabels": labels}}],
                    "containers": [{"name": "web", "image": image,
                                    "args": ["netexec", "--http-port=8080"],
                                    "ports": [{"containerPort": 8080}],
                                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}],
                },
            },
        },
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    return yaml.safe_dump_all([deployment, service])
