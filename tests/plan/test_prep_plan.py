"""preflight (the host checks), prep and the container runtime run by pyinfra against the @fake
connector (tests/support.py: fake_pyinfra): which hosts get which commands, what a failed host
check stops, what a converged host is spared. No host and none of the files' addresses is ever
contacted.
"""

import re

import pytest

from cluster import runtime
from cluster.render import render
from support import CLUSTER_FILES, fake_pyinfra, load, local_copy, sha256_response

DEBIAN_13 = "/etc/os-release\nID=debian\nVERSION_ID=\"13\"\n---"
ROCKY_9 = "/etc/os-release\nID=rocky\nVERSION_ID=\"9.5\"\nID_LIKE=\"rhel centos fedora\"\n---"
CENTOS_7 = "/etc/os-release\nID=centos\nVERSION_ID=\"7\"\n---"
HEALTHY = {  # a Debian 13 amd64 host, cgroup v2, 4 CPUs, 8 GB, no swap, inotify to spare
    "ls -pdL *-release": DEBIAN_13,
    "uname -m": "x86_64",
    "echo cpus=": "cpus=4\nmem_kb=8000000",
    "stat -fc %T /sys/fs/cgroup": "cgroup2fs",
    "max_user_instances=": "max_user_instances=8192\nmax_user_watches=1048576\ninstances=40",
}
HA_NODES = ("lb1", "lb2", "cp1", "cp2", "cp3", "w1", "w2")
STAGES = "tasks/preflight.py tasks/prep.py tasks/container_runtime.py"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Cluster copies and one state directory for the module (secrets are made once)."""
    return tmp_path_factory.mktemp("prep-plan")


def run(workdir, cluster_name, responses=None, stages=STAGES, execute=True, check=True, **overrides):
    """The stages against the fake hosts, every host healthy but for `responses` ({node: {fact
    command: output}}); with `execute` the fake hosts run them and record every command."""
    cluster_file = local_copy(CLUSTER_FILES[cluster_name], workdir, **overrides)
    fake = {node.name: {**HEALTHY, **(responses or {}).get(node.name, {})} for node in load(cluster_file).hosts}
    return fake_pyinfra(cluster_file, workdir / "state", stages, fake, execute=execute, check=check)


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


def assert_no_kernel_or_vm_sysctl(run):
    for node, sent in run.commands.items():
        for command in sent:
            assert not re.search(r"sysctl\s+(-w\s+)?(kernel|vm)\.", command), (node, command)
            assert not re.search(r"\b(kernel|vm)\.[a-z_.]+\s*=", command), (node, command)


def test_fresh_ha_cluster(workdir):
    done = run(workdir, "lab-ha")
    assert_no_kernel_or_vm_sysctl(done)
    for node in HA_NODES:
        assert done.ran(node, rf"^hostname {node}$"), node
        assert done.ran(node, r"apt-get .* install .*\bconntrack\b.*\bnftables\b.*\bchrony$"), node
        assert done.ran(node, r"^swapoff -a$") == [], "no swap was active"
        assert done.ran(node, r"^systemctl mask swap.target$"), node
        assert done.ran(node, r"^modprobe br_netfilter$"), node
        for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.ipv4.ip_forward"):
            assert done.ran(node, rf"^sysctl {re.escape(key)}=1$"), (node, key)
            assert done.ran(node, rf"^echo '{re.escape(key)} = 1' >> /etc/sysctl.d/99-kubeha.conf$"), (node, key)
        assert done.ran(node, r"^systemctl start chrony.service$"), node
        assert done.ran(node, r"^systemctl start kubeha-firewall.service$"), node
        unpacked = done.ran(node, r"^tar -xzf \S+containerd-2.2.3-linux-amd64.tar.gz -C /opt/kubeha/containerd-2.2.3 ")
        assert bool(unpacked) == (not node.startswith("lb")), f"{node}: containerd only on kubelet hosts"
    # /etc/hosts: workers reach the API through their localhost proxy, control planes on the VIP
    hosts = [f"{address} {name}" for name, address in (
        ("lb1", "10.123.0.11"), ("lb2", "10.123.0.12"), ("cp1", "10.123.0.21"), ("cp2", "10.123.0.22"),
        ("cp3", "10.123.0.23"), ("w1", "10.123.0.31"), ("w2", "10.123.0.32"))]
    assert hosts_block(done.output, "cp1") == hosts + ["10.123.0.10 kube-api.kubeha.internal"]
    assert hosts_block(done.output, "w1") == hosts + ["127.0.0.1 kube-api.kubeha.internal"]
    # the offline mirror for every upstream registry; containerd started after its files
    cp1 = done.commands["cp1"]
    for registry in ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io"):
        assert any(c.endswith(f"/etc/containerd/certs.d/{registry}/hosts.toml") and c.startswith("chmod")
                   for c in cp1), registry
    written = [c.split()[-1] for c in cp1 if c.startswith("chmod 0644 /etc/") and " mv -f " in c]
    assert written.index("/etc/systemd/system/containerd.service") < written.index("/etc/containerd/config.toml")
    assert cp1.index("systemctl start containerd.service") > cp1.index(next(c for c in cp1 if "config.toml" in c))


def test_a_host_that_fails_its_checks_is_named_and_stopped(workdir):
    responses = {
        "cp1": {"ls -pdL *-release": CENTOS_7},
        "w1": {"uname -m": "s390x"},
        "cp2": {"sha256sum /etc/kubernetes/pki/ca.crt": "0" * 64 + "  /etc/kubernetes/pki/ca.crt"},
        "cp3": {"echo cpus=": "cpus=1\nmem_kb=1500000"},
        "w2": {"max_user_instances=": "max_user_instances=128\nmax_user_watches=8192\ninstances=100"},
    }
    expected = {
        "cp1": "cp1: centos 7 is not supported (supported: Ubuntu 22.04/24.04, Debian 12/13, RHEL 9/10, Rocky Linux 9/10)",
        "w1": "w1: architecture s390x is not supported (supported: amd64, arm64)",
        "cp2": "cp2: /etc/kubernetes/pki/ca.crt is another CA than the one in the local state",
        "cp3": "cp3: 1 CPU(s); a control plane needs at least 2",
        "w2": "w2: 28 free inotify instances (100 in use of fs.inotify.max_user_instances 128)",
    }
    planned = run(workdir, "lab-ha", responses, stages="tasks/preflight.py", execute=False)
    for node, message in expected.items():
        assert re.search(rf"\[@fake/{node}\]\s+host check will fail: {re.escape(message)}", planned.output), node
    assert "would replace a live cluster's CA" in planned.output

    done = run(workdir, "lab-ha", responses, stages="tasks/preflight.py tasks/prep.py", check=False)
    assert done.returncode != 0, "a failed host fails the run"
    for node, message in expected.items():
        assert re.search(rf"\[@fake/{node}\]\s+host check failed: {re.escape(message)}", done.output), node
        assert not done.ran(node, r"^hostname "), f"{node}: nothing runs after a failed host check"
    for node in ("lb1", "lb2"):
        assert done.ran(node, rf"^hostname {node}$"), "the other hosts go on"


def test_converged_runtime_restarts_only_what_differs(workdir):
    cluster = load(local_copy(CLUSTER_FILES["lab-ha"], workdir))
    unit = render("containerd.service.j2", version="2.2.3", bin_dir="/usr/local/bin", modprobe="/sbin/modprobe")
    current = "/opt/kubeha/containerd-2.2.3/bin/containerd"

    def node_state(name, config=True, running=current):
        state = {**sha256_response("/etc/systemd/system/containerd.service", unit), "MainPID": running}
        if config:
            state.update(sha256_response("/etc/containerd/config.toml",
                                         runtime.containerd_config(cluster, cluster.host(name))))
        return state

    responses = {
        "cp1": node_state("cp1"),
        "cp2": node_state("cp2", running="/opt/kubeha/containerd-2.2.2/bin/containerd"),
        "w1": node_state("w1", config=False),
    }
    done = run(workdir, "lab-ha", responses, stages="tasks/container_runtime.py")
    restarts = {node: done.ran(node, r"^systemctl (try-)?restart containerd") for node in ("cp1", "cp2", "w1")}
    assert restarts == {"cp1": [], "cp2": ["systemctl restart containerd"],
                        "w1": ["systemctl try-restart containerd"]}, restarts
    assert done.ran("cp1", r"daemon-reload") == []


def test_in_a_container_swap_and_clock_stay_the_machines(workdir):
    container = {"systemd-detect-virt": "systemd-nspawn", "#kubeha:active": ["#kubeha:active", "Filename Type",
                                                                              "/dev/vda3 partition 1 0 -2",
                                                                              "#kubeha:fstab"]}
    done = run(workdir, "lab-compact", {n: container for n in ("k1", "k2", "k3", "k4")},
               stages="tasks/preflight.py tasks/prep.py")
    assert_no_kernel_or_vm_sysctl(done)
    for node in ("k1", "k4"):
        assert not done.ran(node, r"swapoff|mask swap.target"), node
        assert done.ran(node, r"mv -f /etc/systemd/system/chrony.service.d/.kubeha-container.conf.kubeha-new "
                              r"/etc/systemd/system/chrony.service.d/kubeha-container.conf"), node
        assert re.search(rf"\[@fake/{node}\]\s+host check warning: {node}: swap is on, and this systemd-nspawn",
                         done.output)


def test_firewall_off_and_an_apt_proxy(workdir):
    running = {"SubState kubeha-firewall.service": "Id=kubeha-firewall.service\nSubState=running"}
    done = run(workdir, "lab-ha", {n: running for n in HA_NODES}, stages="tasks/prep.py",
               **{"prep.firewall": False, "offline.apt_proxy": "http://10.123.0.1:3142"})
    for node in HA_NODES:
        assert done.ran(node, r"^systemctl stop kubeha-firewall.service$"), node
        assert not done.ran(node, r"mv -f \S+ /etc/kubeha/kubeha.nft"), node
        sent = done.commands[node]
        proxy = sent.index(next(c for c in sent if c.endswith("/etc/apt/apt.conf.d/01kubeha-proxy")))
        install = sent.index(next(c for c in sent if re.search(r"apt-get .* install", c)))
        assert proxy < install, "apt's proxy is in place before the first install"


def test_rocky_hosts_get_dnf_and_chronyd(workdir):
    done = run(workdir, "lab-compact", {n: {"ls -pdL *-release": ROCKY_9} for n in ("k1", "k2", "k3", "k4")},
               stages="tasks/prep.py")
    assert done.ran("k1", r"dnf install -y .*conntrack-tools.*container-selinux.*chrony")
    assert done.ran("k1", r"^systemctl start chronyd.service$")
