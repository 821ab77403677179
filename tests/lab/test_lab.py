"""The running lab (root, systemd-nspawn): hosts, access, network limits, safety, and the
fault commands. One lab for the whole session (lab.testing)."""

import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import yaml

from lab import capacity, paths
from lab.testing import LabHandle

pytestmark = pytest.mark.lab

SYSCTL_NOISE = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|kernel\.keys\.(gc|maxkeys)|kernel\.sched_domain"
    r"|fs\.(dentry-state|inode-|file-nr|quota|aio-nr|dentry-negative))"
)


def machine_sysctls():
    """The machine's kernel.*, vm.* and fs.* values (counters that move by themselves left out)."""
    cp = subprocess.run(["sysctl", "-a"], capture_output=True, text=True)
    out = {}
    for line in cp.stdout.splitlines():
        k, _, v = line.partition(" = ")
        if k.split(".")[0] in ("kernel", "vm", "fs") and not SYSCTL_NOISE.match(k):
            out[k] = v
    return out


# Taken when this module is imported, before the session's lab comes up.
SYSCTLS_BEFORE = machine_sysctls()


def proc_sys(key):
    return Path("/proc/sys/" + key.replace(".", "/")).read_text().strip()


# ---- access ------------------------------------------------------------------------------------


def test_ssh_and_sudo_on_every_host_with_strict_host_keys(lab):
    argv = lab.ssh_argv(lab.hosts[0])
    assert "StrictHostKeyChecking=yes" in argv and f"UserKnownHostsFile={lab.config.known_hosts}" in argv
    for h in lab.hosts:
        cp = lab.ssh(h, "id -un; sudo -n id -u")
        assert cp.stdout.split() == [lab.config.ssh_user, "0"], h.name


def test_unknown_host_key_is_refused(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    h = lab.hosts[0]
    argv = [a.replace(lab.config.known_hosts, str(empty)) for a in lab.ssh_argv(h)]
    cp = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=30)
    assert cp.returncode != 0 and "verification failed" in cp.stderr


def test_known_hosts_has_each_hosts_own_key(lab):
    lines = Path(lab.config.known_hosts).read_text().splitlines()
    keys = {}
    for line in lines:
        names, ktype, key = line.split()
        keys[names] = key
    assert set(keys) == {f"{h.name},{h.address}" for h in lab.hosts}
    assert len(set(keys.values())) == len(lab.hosts)  # fresh host keys, none shared


def test_no_root_login_and_no_passwords(lab):
    h = lab.hosts[0]
    argv = [a if a != f"{lab.config.ssh_user}@{h.address}" else f"root@{h.address}" for a in lab.ssh_argv(h)]
    assert subprocess.run([*argv, "true"], capture_output=True, timeout=30).returncode != 0
    cp = lab.sudo(h, "sshd -T | grep -Ei '^(permitrootlogin|passwordauthentication|kbdinteractiveauthentication) '")
    assert sorted(cp.stdout.split("\n")[:3]) == [
        "kbdinteractiveauthentication no",
        "passwordauthentication no",
        "permitrootlogin no",
    ]
    shadow = lab.sudo(h, f"getent shadow root {lab.config.ssh_user} | cut -d: -f2").stdout.split()
    assert shadow == ["*", "*"]


def test_lab_ssh_command(lab):
    h = lab.hosts[-1]
    cp = lab.cli("ssh", h.name, "hostname")
    assert cp.stdout.strip() == h.name


# ---- identity -------------------------------------------------------------------------------------


def test_hostnames_addresses_routes_and_machine_ids(lab):
    ids = set()
    for h in lab.hosts:
        out = lab.ssh(
            h, "hostname; ip -4 -o addr show dev eth0 | awk '{print $4}'; ip route show default; cat /etc/machine-id"
        ).stdout.splitlines()
        assert out[0] == h.name
        assert out[1] == f"{h.address}/{lab.config.prefixlen}"
        assert out[2].startswith(f"default via {lab.config.gateway} dev eth0")
        ids.add(out[3])
    assert len(ids) == len(lab.hosts)


def test_hosts_resolve_each_other_by_name(lab):
    first, last = lab.hosts[0], lab.hosts[-1]
    assert lab.ssh(first, f"getent hosts {last.name}").stdout.split() == [last.address, last.name]


# ---- network: the mirror yes, the rest no --------------------------------------------------------


def test_hosts_reach_each_other(lab):
    a, b = lab.hosts[0], lab.hosts[1]
    lab.ssh(a, f"ping -c1 -W2 {b.address}")  # ping works for a normal user (ping_group_range)


def test_hosts_reach_the_mirror_ports(lab):
    gw = lab.config.gateway
    for h in lab.hosts:
        out = lab.ssh(
            h,
            f"curl -sS -o /dev/null -w '%{{http_code}} ' http://{gw}:{paths.FILES_PORT}/; "
            f"curl -sS -o /dev/null -w '%{{http_code}} ' http://{gw}:{paths.REGISTRY_PORT}/v2/; "
            f"curl -sS -o /dev/null -w '%{{http_code}}' -x http://{gw}:{paths.APT_PROXY_PORT} http://not-the-mirror.invalid/",
        ).stdout
        assert out.split() == ["200", "200", "403"], h.name


def test_file_server_serves_the_artifacts_dir(lab):
    d = paths.ARTIFACT_FILES / "kubeha-lab-test"
    d.mkdir(parents=True, exist_ok=True)
    (d / "hello.txt").write_text("hello from the mirror\n")
    try:
        out = lab.ssh(lab.hosts[0], f"curl -sSf http://{lab.config.gateway}:{paths.FILES_PORT}/kubeha-lab-test/hello.txt")
        assert out.stdout == "hello from the mirror\n"
    finally:
        (d / "hello.txt").unlink()
        d.rmdir()


def test_apt_works_through_the_proxy(lab):
    h = lab.hosts[-1]
    conf = lab.ssh(h, "apt-config dump Acquire::http::Proxy").stdout
    assert f"http://{lab.config.gateway}:{paths.APT_PROXY_PORT}" in conf
    lab.sudo(h, "apt-get -q update && apt-get -q install -y --no-install-recommends socat && socat -V", timeout=600)


@pytest.fixture
def machine_listener():
    """A TCP listener on every address of the machine (0.0.0.0), on a free port."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                c.close()
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def machine_addresses():
    cp = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True)
    return [
        a["local"]
        for link in json.loads(cp.stdout)
        if link["ifname"] not in ("lo", paths.BRIDGE)
        for a in link.get("addr_info", [])
    ]


def test_hosts_cannot_reach_the_machine_beyond_the_mirror(lab, machine_listener):
    """A port open on every address of the machine: the machine reaches it, a host reaches it
    neither on the gateway address nor on the machine's other addresses. (No packet is sent
    anywhere but to this machine.)"""
    port = machine_listener
    targets = [lab.config.gateway] + machine_addresses()
    for addr in targets:
        with socket.create_connection((addr, port), timeout=3):
            pass
    h = lab.hosts[0]
    for addr in targets:
        cp = lab.ssh(h, f"curl -sS -m 3 -o /dev/null http://{addr}:{port}/", check=False)
        assert cp.returncode != 0, f"{h.name} reached {addr}:{port}"


def test_nothing_routes_out_of_the_lab(lab):
    h = lab.hosts[0]
    routes = lab.ssh(h, "ip -4 route show").stdout.splitlines()
    assert sorted(r.split()[0] for r in routes) == [lab.config.node_cidr, "default"]
    fwd = subprocess.run(["iptables", "-S", paths.FW_CHAIN_FORWARD], capture_output=True, text=True).stdout
    assert f"-A {paths.FW_CHAIN_FORWARD} -i {paths.BRIDGE} -o {paths.BRIDGE} -j ACCEPT" in fwd
    assert f"-A {paths.FW_CHAIN_FORWARD} -j DROP" in fwd
    assert SYSCTLS_BEFORE and proc_sys("net.ipv4.ip_forward") == lab_session_ip_forward(lab)
    resolv = lab.ssh(h, "cat /etc/resolv.conf").stdout
    assert f"nameserver {lab.config.gateway}" in resolv


def lab_session_ip_forward(lab):
    st = json.loads(paths.STATE_FILE.read_text())
    return st["ip_forward_before"]


# ---- inside the hosts: what a deploy needs ---------------------------------------------------------


def test_modprobe_of_built_in_modules(lab):
    h = lab.hosts[0]
    lab.sudo(h, "modprobe overlay && modprobe br_netfilter && modprobe nf_conntrack && modprobe vxlan")
    assert lab.sudo(h, "modprobe ip_vs", check=False).returncode != 0  # no IPVS in this kernel


def test_cgroup_controllers_are_writable_inside(lab):
    h = lab.hosts[0]
    lab.sudo(
        h,
        "for c in cpu cpuset memory pids; do mkdir /sys/fs/cgroup/$c/kubeha-lab-test && "
        "rmdir /sys/fs/cgroup/$c/kubeha-lab-test || exit 1; done",
    )
    # Each host's cgroups sit in its own group on the machine, not in the machine's root.
    leader = lab.status()["hosts"][0]["leader"]
    cg = Path(f"/proc/{leader}/cgroup").read_text()
    assert f"/{paths.CGROUP_GROUP}/{h.name}" in cg


def test_systemd_is_running_without_failed_units(lab):
    for h in lab.hosts:
        cp = lab.ssh(h, "systemctl is-system-running --wait; systemctl --failed --no-legend --plain", check=False)
        assert cp.stdout.split("\n")[0] == "running", (h.name, cp.stdout)


# ---- the machine's kernel settings are safe ----------------------------------------------------------


def test_kernel_sysctls_inside_do_not_change_the_machine(lab):
    h = lab.hosts[0]
    before = proc_sys("kernel.panic")
    new = "7" if before != "7" else "8"
    lab.sudo(h, f"sysctl -w kernel.panic={new}")  # "works", on the host's own copy
    assert lab.sudo(h, "sysctl -n kernel.panic").stdout.strip() == new
    assert proc_sys("kernel.panic") == before
    lab.sudo(h, "sysctl -w kernel.panic=10")
    # the rest of kernel.*, vm.*, fs.* is read-only inside
    for key in ("kernel.pid_max", "vm.max_map_count", "fs.file-max", "kernel.core_pattern"):
        cp = lab.sudo(h, f"sysctl -w {key}=$(sysctl -n {key})", check=False)
        assert cp.returncode != 0, key
    # net.* is per host
    lab.sudo(h, "sysctl -w net.ipv4.ip_forward=1 net.ipv4.ip_nonlocal_bind=1")
    assert proc_sys("net.ipv4.ip_forward") == lab_session_ip_forward(lab)


def test_hosts_show_the_values_kubelet_wants(lab):
    want = {
        "vm.overcommit_memory": "1",
        "vm.panic_on_oom": "0",
        "kernel.panic": "10",
        "kernel.panic_on_oops": "1",
        "kernel.keys.root_maxkeys": "1000000",
        "kernel.keys.root_maxbytes": "25000000",
    }
    for h in lab.hosts:
        out = lab.ssh(h, "/usr/sbin/sysctl " + " ".join(want)).stdout
        got = dict(l.split(" = ") for l in out.splitlines())
        assert got == want, h.name


def test_machine_sysctls_unchanged_but_the_limits_the_lab_raises(lab):
    raised = lab.status()["raised_sysctls"]
    assert set(raised) <= set(capacity.RAISED_SYSCTLS)
    after = machine_sysctls()
    for key, minimum in capacity.RAISED_SYSCTLS.items():
        assert int(after[key]) >= minimum
    changed = {k: (v, after.get(k)) for k, v in SYSCTLS_BEFORE.items() if after.get(k) != v and k not in raised}
    assert not changed


def test_down_puts_the_machines_own_limits_back(lab):
    """From limits below what the lab needs (set here, then put back): `up` raises them and
    `down` restores exactly the values it found."""
    lab.down()
    original = {key: proc_sys(key) for key in capacity.RAISED_SYSCTLS}
    try:
        for key, minimum in capacity.RAISED_SYSCTLS.items():
            capacity.sysctl_path(key).write_text(str(min(int(original[key]), minimum // 2)))
        low = {key: proc_sys(key) for key in capacity.RAISED_SYSCTLS}
        out = lab.up().stdout
        for key, minimum in capacity.RAISED_SYSCTLS.items():
            assert f"{key} {low[key]} -> {minimum}" in out
            assert int(proc_sys(key)) == minimum
        assert lab.healthy()  # the lab's own changes are not reported as the machine's
        assert "back to the machine's own" in lab.down().stdout
        assert {key: proc_sys(key) for key in capacity.RAISED_SYSCTLS} == low
    finally:
        for key, value in original.items():
            capacity.sysctl_path(key).write_text(value)
    lab.up()


# ---- fault commands ---------------------------------------------------------------------------------


def host_status(lab, name):
    return next(h for h in lab.status()["hosts"] if h["name"] == name)


def test_stop_and_start_a_host(lab):
    h, other = lab.hosts[2], lab.hosts[0]
    try:
        out = lab.cli("stop", h.name).stdout
        assert f"{h.name} stopped" in out
        s = host_status(lab, h.name)
        assert s["machine"] == "stopped" and s["pid"] is None
        assert lab.cli("status", check=False).returncode == 1  # not all up
        assert lab.ssh(h, "true", check=False, timeout=30).returncode != 0
        lab.ssh(other, "true")  # the others are untouched
        t0 = time.monotonic()
        assert f"{h.name} started" in lab.cli("start", h.name).stdout
        assert time.monotonic() - t0 < 60
        assert lab.ssh(h, "hostname").stdout.strip() == h.name  # same host key, strict checking
        assert "was already running" in lab.cli("start", h.name).stdout
    finally:
        lab.cli("start", h.name, check=False)


def test_cut_and_heal_a_link(lab):
    h, other = lab.hosts[-1], lab.hosts[0]
    try:
        lab.cli("cut", h.name)
        assert host_status(lab, h.name)["link"] == "cut"
        cp = lab.ssh(other, f"curl -sS -m 3 telnet://{h.address}:22 </dev/null", check=False)
        assert cp.returncode != 0
        assert lab.ssh(h, "true", check=False, timeout=30).returncode != 0
        # the host itself keeps running and keeps its address
        assert host_status(lab, h.name)["machine"] == "running"
        lab.cli("heal", h.name)
        assert host_status(lab, h.name)["link"] == "up"
        deadline = time.monotonic() + 30
        while lab.ssh(h, "true", check=False, timeout=30).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        lab.ssh(other, f"ping -c1 -W2 {h.address}")
    finally:
        lab.cli("heal", h.name, check=False)


def test_kill_a_service(lab):
    h = lab.hosts[1]
    lab.sudo(h, "systemd-run --unit=kubeha-lab-test --property=Restart=no sleep 600")
    try:
        pid = lab.sudo(h, "systemctl show -P MainPID kubeha-lab-test").stdout.strip()
        assert pid not in ("", "0")
        out = lab.cli("kill", h.name, "kubeha-lab-test").stdout
        assert f"pid {pid}" in out
        time.sleep(0.5)
        show = lab.sudo(h, "systemctl show -P ActiveState,Result kubeha-lab-test", check=False).stdout.split()
        assert "active" not in show and lab.sudo(h, f"kill -0 {pid}", check=False).returncode != 0
        cp = lab.cli("kill", h.name, "kubeha-lab-test", check=False)
        assert cp.returncode == 1 and "no running main process" in cp.stderr
    finally:
        lab.sudo(h, "systemctl reset-failed kubeha-lab-test; systemctl stop kubeha-lab-test", check=False)


def test_kill_sshd_and_systemd_restarts_it(lab):
    h = lab.hosts[1]
    old = lab.sudo(h, "systemctl show -P MainPID ssh").stdout.strip()
    lab.cli("kill", h.name, "ssh")
    deadline = time.monotonic() + 30
    while True:
        cp = lab.ssh(h, "systemctl show -P MainPID ssh", check=False, timeout=20)
        if cp.returncode == 0 and cp.stdout.strip() not in ("", "0", old):
            break
        assert time.monotonic() < deadline, "sshd did not come back"
        time.sleep(0.5)


def test_fault_commands_need_a_known_host(lab):
    cp = lab.cli("cut", "nosuchhost", check=False)
    assert cp.returncode == 2 and "no host 'nosuchhost'" in cp.stderr


# ---- up again: reuse, repair --------------------------------------------------------------------------


def test_up_again_reuses_the_running_lab(lab):
    leaders = {h["name"]: h["leader"] for h in lab.status()["hosts"]}
    t0 = time.monotonic()
    out = lab.up().stdout
    took = time.monotonic() - t0
    assert "debootstrap" not in out and "root file system ready" not in out and "started" not in out
    assert {h["name"]: h["leader"] for h in lab.status()["hosts"]} == leaders
    assert took < 30


def test_up_leaves_a_host_alone_that_holds_a_vip(lab):
    """A VIP on a host's eth0 (keepalived's, kube-vip's) is the cluster's, not a broken network:
    found when adding a worker to a running cluster restarted both lb hosts, one after the other
    as the VIP moved."""
    h = lab.hosts[0]
    lab.sudo(h, "ip addr add 10.123.0.249/24 dev eth0")
    try:
        leader = host_status(lab, h.name)["leader"]
        lab.up()
        assert host_status(lab, h.name)["leader"] == leader
    finally:
        lab.sudo(h, "ip addr del 10.123.0.249/24 dev eth0", check=False)


def test_up_repairs_a_half_broken_lab(lab):
    victim, other = lab.hosts[3], lab.hosts[4]
    pidfile = paths.RUN / f"machine-{victim.name}.pid"
    os.kill(int(pidfile.read_text().split()[0]), 9)  # a crashed machine
    subprocess.run(["ip", "netns", "del", other.netns], check=True)  # a lost namespace
    lab.cli("cut", lab.hosts[5].name)
    time.sleep(1)
    assert not lab.healthy()
    out = lab.up().stdout
    assert f"{victim.name}" in out and "healed" in out
    assert lab.healthy()
    for h in (victim, other, lab.hosts[5]):
        lab.ssh(h, "true")


def test_stop_start_cut_and_heal_in_any_order_and_again(lab):
    """Every start ends with ssh answering, whatever came before it."""
    h, other = lab.hosts[0], lab.hosts[1]
    steps = ["stop", "start"] * 6 + ["cut", "stop", "start", "heal", "stop", "cut", "start", "heal",
                                     "cut", "heal", "stop", "start"]
    link_cut = False
    try:
        for i, step in enumerate(steps):
            lab.cli(step, h.name)
            link_cut = {"cut": True, "heal": False}.get(step, link_cut)
            if step in ("start", "heal") and not link_cut:
                assert wait_for_ssh(lab, h, 60), f"no ssh on {h.name} after step {i} ({step}) of {steps}"
        lab.ssh(other, "true")
    finally:
        lab.cli("heal", h.name, check=False)
        lab.cli("start", h.name, check=False)


def wait_for_ssh(lab, host, timeout):
    deadline = time.monotonic() + timeout
    while lab.ssh(host, "true", check=False, timeout=30).returncode != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


# ---- a lab that grows ---------------------------------------------------------------------------


def test_up_with_an_added_host_grows_the_running_lab_and_down_name_shrinks_it(lab, tmp_path):
    doc = yaml.safe_load(lab.cluster_file.read_text())
    doc["hosts"].append({"name": "extra1", "address": "10.123.0.250", "roles": ["worker"]})
    grown_file = tmp_path / "grown.yaml"
    grown_file.write_text(yaml.safe_dump(doc))
    grown = LabHandle(grown_file)
    leaders = {h["name"]: h["leader"] for h in lab.status()["hosts"]}
    first = lab.hosts[0]

    t0 = time.monotonic()
    out = lab.cli("up", cluster=grown_file).stdout
    print(f"\nadding a machine to the running lab: {time.monotonic() - t0:.1f} s")
    assert "adding extra1 to the running lab" in out
    hosts = {h["name"]: h for h in lab.status()["hosts"]}
    assert {n: hosts[n]["leader"] for n in leaders} == leaders, "a running machine was restarted"
    assert hosts["extra1"]["machine"] == "running" and hosts["extra1"]["ssh"]
    assert grown.ssh("extra1", "hostname").stdout.strip() == "extra1"
    assert lab.ssh(first, "getent hosts extra1").stdout.split()[0] == "10.123.0.250"

    # the file without it: the machine stays until asked
    out = lab.up().stdout
    assert "keeping extra1" in out and "down extra1" in out
    assert {h["name"] for h in lab.status()["hosts"]} == set(leaders) | {"extra1"}

    out = lab.cli("down", "extra1").stdout
    assert "removed extra1" in out
    hosts = {h["name"]: h for h in lab.status()["hosts"]}
    assert set(hosts) == set(leaders)
    assert {n: hosts[n]["leader"] for n in leaders} == leaders
    assert not (paths.MACHINES / "extra1").exists()
    assert lab.ssh(first, "getent hosts extra1", check=False).returncode != 0
    assert lab.healthy()
