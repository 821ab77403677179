"""preflight, prep and the container runtime run by pyinfra against the @fake connector: which
hosts get which commands, what a failed preflight stops, what a converged host is spared.

Each test runs `pyinfra tests/plan/fake_inventory.py tasks/<stage>.py ...` on a local copy of a
lab cluster file, either `--dry` (the plan) or `-y -vv` (the fake hosts "run" every command and
the output lists them). The fake hosts answer fact commands from a JSON file of canned outputs
({node: {command substring: output}}; the first matching substring wins). No host and none of
the files' addresses is ever contacted.
"""

import hashlib
import json
import os
import re
import subprocess

import pytest

from cluster.model import load
from cluster.render import render
from support import PROJECT, local_copy
from operations import host as ops

DEBIAN_13 = "/etc/os-release\nID=debian\nVERSION_ID=\"13\"\n---"
ROCKY_9 = "/etc/os-release\nID=rocky\nVERSION_ID=\"9.5\"\nID_LIKE=\"rhel centos fedora\"\n---"
CENTOS_7 = "/etc/os-release\nID=centos\nVERSION_ID=\"7\"\n---"
HEALTHY = {  # a Debian 13 amd64 host, cgroup v2, 4 CPUs, 8 GB, no swap
    "ls -pdL *-release": DEBIAN_13,
    "uname -m": "x86_64",
    "echo cpus=": "cpus=4\nmem_kb=8000000",
    "stat -fc %T /sys/fs/cgroup": "cgroup2fs",
}
HA_NODES = ("lb1", "lb2", "cp1", "cp2", "cp3", "w1", "w2")
STAGES = "preflight prep container_runtime"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Cluster copies and one state directory for the module (secrets are made once)."""
    return tmp_path_factory.mktemp("prep-plan")


def run(workdir, cluster_name, responses=None, stages=STAGES, execute=True, **overrides):
    """Runs the stages against the fake hosts; returns (exit code, output). `responses` maps a
    node to the outputs that differ from a healthy host's."""
    cluster_file = local_copy(PROJECT / "lab" / "clusters" / f"{cluster_name}.yaml", workdir, **overrides)
    nodes = [h.name for h in load(cluster_file)[0].hosts]
    fake = {node: {**(responses or {}).get(node, {}), **{k: v for k, v in HEALTHY.items()
                                                         if k not in (responses or {}).get(node, {})}}
            for node in nodes}
    fake_state = workdir / f"fake-{cluster_name}-{len(list(workdir.iterdir()))}.json"
    fake_state.write_text(json.dumps(fake))
    env = {**os.environ, "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(workdir / "state"),
           "KUBEHA_FAKE_STATE": str(fake_state), "PYINFRA_FAKE_DELAY": "0", "PYINFRA_FAKE_DELAY_JITTER": "0"}
    args = ["pyinfra", "tests/plan/fake_inventory.py"] + [f"tasks/{stage}.py" for stage in stages.split()]
    args += ["-y", "-vv"] if execute else ["--dry"]
    result = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def commands(output):
    """{node: [command, ...]} the fake hosts were given, fact commands included."""
    result = {}
    for node, command in re.findall(r"^\[@fake/(\S+)\]\s+>>> (.*)$", output, re.M):
        result.setdefault(node, []).append(command)
    return result


def hosts_block(output, node):
    """The lines of the /etc/hosts block written on `node` (its command spans several lines)."""
    current, lines, inside = None, [], False
    for line in output.splitlines():
        match = re.match(r"^\[@fake/(\S+)\]\s+>>> ", line)
        if match:
            current = match.group(1)
        if current == node and line == "# BEGIN kubeha cluster hosts":
            inside, lines = True, []
        elif inside and line == "# END kubeha cluster hosts":
            return lines
        elif inside:
            lines.append(line)
    return None


def ran(output, node, pattern):
    return [c for c in commands(output).get(node, []) if re.search(pattern, c)]


def assert_no_kernel_or_vm_sysctl(output):
    for node, sent in commands(output).items():
        for command in sent:
            assert not re.search(r"sysctl\s+(-w\s+)?(kernel|vm)\.", command), (node, command)
            assert not re.search(r"\b(kernel|vm)\.[a-z_.]+\s*=", command), (node, command)


def test_fresh_ha_cluster(workdir):
    code, output = run(workdir, "ha")
    assert code == 0, output
    assert_no_kernel_or_vm_sysctl(output)
    for node in HA_NODES:
        assert ran(output, node, rf"^hostname {node}$"), node
        assert ran(output, node, r"apt-get .* install .*\bconntrack\b.*\bnftables\b.*\bchrony$"), node
        assert ran(output, node, r"^swapoff -a$") == [], "no swap was active"
        assert ran(output, node, r"^systemctl mask swap.target$"), node
        assert ran(output, node, r"^modprobe br_netfilter$"), node
        for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.ipv4.ip_forward"):
            assert ran(output, node, rf"^sysctl {re.escape(key)}=1$"), (node, key)
            assert ran(output, node, rf"^echo '{re.escape(key)} = 1' >> /etc/sysctl.d/99-kubeha.conf$"), (node, key)
        assert ran(output, node, r"^systemctl start chrony.service$"), node
        assert ran(output, node, r"^systemctl start kubeha-firewall.service$"), node
        runtime = ran(output, node, r"^tar -xzf \S+containerd-2.2.3-linux-amd64.tar.gz -C /opt/kubeha/containerd-2.2.3 ")
        assert bool(runtime) == (not node.startswith("lb")), f"{node}: containerd only on kubelet hosts"
    # /etc/hosts: workers reach the API through their localhost proxy, control planes on the VIP
    hosts = [f"{address} {name}" for name, address in (
        ("lb1", "10.123.0.11"), ("lb2", "10.123.0.12"), ("cp1", "10.123.0.21"), ("cp2", "10.123.0.22"),
        ("cp3", "10.123.0.23"), ("w1", "10.123.0.31"), ("w2", "10.123.0.32"))]
    assert hosts_block(output, "cp1") == hosts + ["10.123.0.10 kube-api.kubeha.internal"]
    assert hosts_block(output, "w1") == hosts + ["127.0.0.1 kube-api.kubeha.internal"]
    # the offline mirror for every upstream registry; containerd started after its files
    cp1 = commands(output)["cp1"]
    for registry in ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io"):
        assert any(c.endswith(f"/etc/containerd/certs.d/{registry}/hosts.toml") and c.startswith("chmod")
                   for c in cp1), registry
    written = [c.split()[-1] for c in cp1 if c.startswith("chmod 0644 /etc/") and " mv -f " in c]
    assert written.index("/etc/systemd/system/containerd.service") < written.index("/etc/containerd/config.toml")
    assert cp1.index("systemctl start containerd.service") > cp1.index(next(c for c in cp1 if "config.toml" in c))


def test_failed_preflight_names_the_host_and_stops_it(workdir):
    responses = {
        "cp1": {"ls -pdL *-release": CENTOS_7},
        "w1": {"uname -m": "s390x"},
        "cp2": {"sha256sum /etc/kubernetes/pki/ca.crt": "0" * 64 + "  /etc/kubernetes/pki/ca.crt"},
        "cp3": {"echo cpus=": "cpus=1\nmem_kb=1500000"},
    }
    code, output = run(workdir, "ha", responses, stages="preflight", execute=False)
    assert code == 0, output
    expected = {
        "cp1": "cp1: centos 7 is not supported (supported: Ubuntu 22.04/24.04, Debian 12/13, RHEL 9/10, Rocky Linux 9/10)",
        "w1": "w1: architecture s390x is not supported (supported: amd64, arm64)",
        "cp2": "cp2: /etc/kubernetes/pki/ca.crt is another CA than the one in the local state",
        "cp3": "cp3: 1 CPU(s); a control plane needs at least 2",
    }
    for node, message in expected.items():
        assert re.search(rf"\[@fake/{node}\]\s+preflight will fail: {re.escape(message)}", output), (node, output)
    assert "would replace a live cluster's CA" in output

    code, output = run(workdir, "ha", responses, stages="preflight prep")
    assert code != 0, "a failed host fails the run"
    for node, message in expected.items():
        assert re.search(rf"\[@fake/{node}\]\s+preflight failed: {re.escape(message)}", output), node
        assert not ran(output, node, r"^hostname "), f"{node}: nothing runs after a failed preflight"
    for node in ("lb1", "lb2", "w2"):
        assert ran(output, node, rf"^hostname {node}$"), "the other hosts go on"


def sha256(path, content):
    return {f"sha256sum {path}": f"{hashlib.sha256(content.encode()).hexdigest()}  {path}"}


def test_converged_runtime_restarts_only_what_differs(workdir):
    cluster = load(local_copy(PROJECT / "lab" / "clusters" / "ha.yaml", workdir))[0]
    unit = render("containerd.service.j2", version="2.2.3", bin_dir="/usr/local/bin", modprobe="/sbin/modprobe")
    current = "/opt/kubeha/containerd-2.2.3/bin/containerd"

    def node_state(name, config=True, running=current):
        state = {**sha256("/etc/systemd/system/containerd.service", unit), "MainPID": running}
        if config:
            state.update(sha256("/etc/containerd/config.toml", ops.containerd_config(cluster, cluster.host(name))))
        return state

    responses = {
        "cp1": node_state("cp1"),
        "cp2": node_state("cp2", running="/opt/kubeha/containerd-2.2.2/bin/containerd"),
        "w1": node_state("w1", config=False),
    }
    code, output = run(workdir, "ha", responses, stages="container_runtime")
    assert code == 0, output
    restarts = {node: ran(output, node, r"^systemctl (try-)?restart containerd") for node in ("cp1", "cp2", "w1")}
    assert restarts == {"cp1": [], "cp2": ["systemctl restart containerd"],
                        "w1": ["systemctl try-restart containerd"]}, restarts
    assert ran(output, "cp1", r"daemon-reload") == []


def test_in_a_container_swap_and_clock_stay_the_machines(workdir):
    container = {"systemd-detect-virt": "systemd-nspawn", "#kubeha:active": ["#kubeha:active", "Filename Type",
                                                                              "/dev/vda3 partition 1 0 -2",
                                                                              "#kubeha:fstab"]}
    code, output = run(workdir, "compact", {n: container for n in ("k1", "k2", "k3", "k4")}, stages="preflight prep")
    assert code == 0, output
    assert_no_kernel_or_vm_sysctl(output)
    for node in ("k1", "k4"):
        assert not ran(output, node, r"swapoff|mask swap.target"), node
        assert ran(output, node, r"mv -f /etc/systemd/system/chrony.service.d/.kubeha-container.conf.kubeha-new "
                                 r"/etc/systemd/system/chrony.service.d/kubeha-container.conf"), node
        assert re.search(rf"\[@fake/{node}\]\s+preflight warning: {node}: swap is on, and this systemd-nspawn", output)


def test_firewall_off_and_an_apt_proxy(workdir):
    running = {"SubState kubeha-firewall.service": "Id=kubeha-firewall.service\nSubState=running"}
    code, output = run(workdir, "ha", {n: running for n in HA_NODES}, stages="prep",
                       **{"prep.firewall": False, "offline.apt_proxy": "http://10.123.0.1:3142"})
    assert code == 0, output
    for node in HA_NODES:
        assert ran(output, node, r"^systemctl stop kubeha-firewall.service$"), node
        assert not ran(output, node, r"mv -f \S+ /etc/kubeha/kubeha.nft"), node
        sent = commands(output)[node]
        proxy = sent.index(next(c for c in sent if c.endswith("/etc/apt/apt.conf.d/01kubeha-proxy")))
        install = sent.index(next(c for c in sent if re.search(r"apt-get .* install", c)))
        assert proxy < install, "apt's proxy is in place before the first install"


def test_rocky_hosts_get_dnf_and_chronyd(workdir):
    code, output = run(workdir, "compact", {n: {"ls -pdL *-release": ROCKY_9} for n in ("k1", "k2", "k3", "k4")},
                       stages="prep")
    assert code == 0, output
    assert ran(output, "k1", r"dnf install -y .*conntrack-tools.*container-selinux.*chrony")
    assert ran(output, "k1", r"^systemctl start chronyd.service$")
