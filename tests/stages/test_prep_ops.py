"""The host operations of preflight, prep and the container runtime (operations/host.py), run
in-process against faked facts, and preflight's verdict (`findings`) from a table of hosts.

Each operation test gives one pyinfra host canned facts, runs the operation's body and looks at
the commands it would send: none when the host is already as wanted.
"""

import subprocess
from types import SimpleNamespace

import pytest
from pyinfra.api import Config, FunctionCommand, Inventory, State
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.server import Command, Selinux

from cluster.validation import validate
from facts.host import SwapState
from operations import host as ops
from support import CLUSTER_FILES, local_copy


def run(op, facts, executing=True, **kwargs):
    """The commands `op` yields on a fake host whose facts come from `facts`:
    {fact class: value}, and for server.Command {substring of the command: output}."""
    inventory = Inventory((["@fake/n1"], {}))
    state = State(inventory, Config())
    state.is_executing = executing
    host = inventory.get_host("@fake/n1")

    def get_fact(cls, *args, **fact_kwargs):
        value = facts.get(cls)
        if cls is Command:
            return next((out for key, out in (value or {}).items() if key in fact_kwargs["command"]), "")
        return value

    host.get_fact = get_fact
    with ctx_state.use(state), ctx_host.use(host):
        return [c if isinstance(c, FunctionCommand) else str(c) for c in op._inner(**kwargs)]


def shell_ok(commands):
    for command in commands:
        subprocess.run(["sh", "-n", "-c", command], check=True)


# swap_off

FSTAB_LINE = "/swapfile none swap sw 0 0"


def test_swap_goes_off_now_and_after_a_reboot():
    commands = run(ops.swap_off, {SwapState: {"active": ["/swapfile"], "fstab": [FSTAB_LINE]}})
    assert commands == ["swapoff -a", ops.COMMENT_FSTAB_SWAP, "systemctl mask swap.target"]
    shell_ok(commands)


def test_swap_already_off_changes_nothing():
    facts = {SwapState: {"active": [], "fstab": []}, Command: {"is-enabled swap.target": "masked"}}
    assert run(ops.swap_off, facts) == []


def test_a_containers_swap_is_the_machines_and_is_left_alone():
    facts = {SwapState: {"active": ["/dev/vda3"], "fstab": []}}
    assert run(ops.swap_off, facts, in_container="systemd-nspawn") == []
    facts = {SwapState: {"active": [], "fstab": [FSTAB_LINE]}}
    assert run(ops.swap_off, facts, in_container="systemd-nspawn") == [ops.COMMENT_FSTAB_SWAP]


def test_the_fstab_edit_comments_swap_lines_only(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /dev/sdb none swap sw 0 0\n"
                     "  /dev/vda3\tnone\tswap\tsw\t0\t0\n/dev/sdc /srv/swap ext4 defaults 0 2\n")
    subprocess.run(["sh", "-c", ops.COMMENT_FSTAB_SWAP.replace("/etc/fstab", str(fstab))], check=True)
    lines = fstab.read_text().splitlines()
    assert lines[0] == "UUID=1 / ext4 defaults 0 1"
    assert lines[1] == "# kubeha: swap off for Kubernetes: /swapfile none swap sw 0 0"
    assert lines[2] == "# /dev/sdb none swap sw 0 0"
    assert lines[3].startswith("# kubeha: swap off for Kubernetes: ")
    assert lines[4] == "/dev/sdc /srv/swap ext4 defaults 0 2", "a mount point named swap is no swap"
    # what facts/host.py's SwapState reads afterwards: no swap line left
    left = subprocess.run(["awk", '$1 !~ /^#/ && $3 == "swap"', str(fstab)], capture_output=True, text=True)
    assert left.stdout == ""


# kernel_modules, selinux_relabel, stale registry files, the running binary

def test_only_missing_modules_are_loaded():
    commands = run(ops.kernel_modules, {Command: {"overlay": "overlay"}}, modules=["overlay", "br_netfilter"])
    assert commands == ["modprobe br_netfilter"]
    assert run(ops.kernel_modules, {Command: {"overlay": "overlay\nbr_netfilter"}},
               modules=["overlay", "br_netfilter"]) == []


def test_module_probe_sees_built_in_modules(tmp_path):
    """The probe's shell runs here: this machine has overlay (and maybe br_netfilter) built in or
    loaded, without /sys/module entries for every one of them."""
    probe = run(ops.kernel_modules, {Command: {}}, modules=["overlay"])
    assert probe == ["modprobe overlay"]  # nothing answered: it would load
    script = "; ".join(f"if test -d /sys/module/{m} || {ops.MODULE_PRESENT[m]}; then echo {m}; fi"
                       for m in ("overlay",))
    found = subprocess.run(["sh", "-c", script + "; true"], capture_output=True, text=True)
    if "overlay" in open("/proc/filesystems").read():
        assert found.stdout.split() == ["overlay"]


def test_selinux_labels_only_when_enforced_and_different():
    paths = ["/usr/local/bin", "/opt/kubeha"]
    assert run(ops.selinux_relabel, {Selinux: {"mode": None}}, paths=paths) == []
    assert run(ops.selinux_relabel, {Selinux: {"mode": "enabled"}, Command: {"restorecon": ""}}, paths=paths) == []
    pending = "Would relabel /usr/local/bin/runc from user_tmp_t to bin_t"
    assert run(ops.selinux_relabel, {Selinux: {"mode": "enabled"}, Command: {"restorecon": pending}},
               paths=paths) == ["restorecon -R /usr/local/bin /opt/kubeha"]


def test_registry_files_kubeha_no_longer_wants_are_removed():
    found = "/etc/containerd/certs.d/docker.io/hosts.toml\n/etc/containerd/certs.d/old.example:5000/hosts.toml"
    commands = run(ops.remove_stale_registry_hosts, {Command: {"grep -l": found}},
                   certs_dir="/etc/containerd/certs.d", wanted=["docker.io"])
    assert commands == ["rm -f /etc/containerd/certs.d/old.example:5000/hosts.toml && "
                        "rmdir --ignore-fail-on-non-empty /etc/containerd/certs.d/old.example:5000"]
    shell_ok(commands)


@pytest.mark.parametrize("running, restarts", [
    ("", False),  # not running
    ("/opt/kubeha/containerd-2.2.3/bin/containerd", False),
    ("/opt/kubeha/containerd-2.2.2/bin/containerd", True),
    ("/opt/kubeha/containerd-2.2.3/bin/containerd (deleted)", True),
])
def test_containerd_running_an_older_release_is_restarted(running, restarts):
    commands = run(ops.restart_if_running_another, {Command: {"MainPID": running}},
                   service="containerd", binary="/opt/kubeha/containerd-2.2.3/bin/containerd")
    assert commands == (["systemctl restart containerd"] if restarts else [])


# preflight's verdict

@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    result = {}
    for name, source in CLUSTER_FILES.items():
        cluster, problems = validate(local_copy(source, tmp_path_factory.mktemp(name)))
        assert not problems, problems
        result[name] = cluster
    return result


def facts(**changes):
    """A healthy Debian 13 amd64 host with cgroup v2, 4 CPUs and 8 GB."""
    base = {"os_id": "debian", "os_version": "13", "arch": "x86_64", "cgroup": 2, "cpus": 4, "memory_mb": 8000,
            "container": None, "swap": {"active": [], "fstab": []},
            "time": {"service": "chrony", "synchronized": True}, "containerd": None, "firewalls": [],
            "ca_sha256": {}}
    return {**base, **changes}


def verdict(cluster, node_name, local_ca=None, **changes):
    return ops.findings(cluster, cluster.host(node_name), facts(**changes), local_ca or {})


@pytest.mark.parametrize("os_id, version, supported", [
    ("ubuntu", "22.04", True), ("ubuntu", "24.04", True), ("ubuntu", "20.04", False), ("ubuntu", "24.10", False),
    ("debian", "12", True), ("debian", "13", True), ("debian", "11", False), ("debian", "", False),
    ("rhel", "9.4", True), ("rhel", "10.0", True), ("rocky", "9.5", True), ("rocky", "8.10", False),
    ("centos", "7", False), ("", "", False),
])
def test_supported_systems(clusters, os_id, version, supported):
    errors, _ = verdict(clusters["lab-ha"], "lb1", os_id=os_id, os_version=version)
    if supported:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith("lb1: ") and "is not supported" in errors[0]
        assert "Ubuntu 22.04/24.04, Debian 12/13, RHEL 9/10, Rocky Linux 9/10" in errors[0]


def test_timesyncd_is_refused_where_it_has_no_package(clusters):
    cluster = clusters["lab-ha"]
    cluster.prep.time_sync = "systemd-timesyncd"
    try:
        assert verdict(cluster, "w1", os_id="ubuntu", os_version="24.04")[0] == []
        errors, _ = verdict(cluster, "w1", os_id="rocky", os_version="9.5")
    finally:
        cluster.prep.time_sync = "chrony"
    assert errors == ["w1: prep.time_sync systemd-timesyncd has no package on rocky 9.5: use chrony"]


def test_architecture_without_checksums_fails_only_hosts_that_download(clusters):
    cluster = clusters["lab-ha"]
    errors, _ = verdict(cluster, "w1", arch="s390x")
    assert errors == ["w1: architecture s390x is not supported (supported: amd64, arm64)"]
    assert verdict(cluster, "lb1", arch="s390x")[0] == [], "an lb host downloads no release file"
    assert verdict(cluster, "w1", arch="aarch64")[0] == []


def test_a_version_without_a_pinned_checksum_names_the_component(clusters):
    cluster = clusters["lab-ha"]
    pinned = cluster.containerd.version
    cluster.containerd.version = "2.2.99"
    try:
        errors, _ = verdict(cluster, "cp1")
    finally:
        cluster.containerd.version = pinned
    assert errors == ["cp1: no sha256 is pinned for containerd 2.2.99 on amd64: add them to offline.checksums_file"]


def test_cgroup_v1_needs_the_knob_for_kubelet_1_35(clusters):
    example = clusters["topology-a"]  # allow_cgroup_v1 is off there
    errors, _ = verdict(example, "k4", cgroup=1)
    assert len(errors) == 1 and "kubernetes.allow_cgroup_v1" in errors[0] and errors[0].startswith("k4: ")
    assert verdict(clusters["lab-compact"], "k4", cgroup=1)[0] == [], "the lab turns the knob on"
    assert verdict(example, "k4", cgroup=2)[0] == []
    lb_example = clusters["topology-b"]
    assert verdict(lb_example, "lb1", cgroup=1)[0] == [], "no kubelet on an lb host"


def test_small_control_planes_fail_and_small_workers_warn(clusters):
    cluster = clusters["lab-ha"]
    errors, _ = verdict(cluster, "cp1", cpus=1, memory_mb=1500)
    assert errors == ["cp1: 1 CPU(s); a control plane needs at least 2",
                      "cp1: 1500 MB memory; a control plane needs at least 1700 MB"]
    errors, warnings = verdict(cluster, "w1", cpus=1, memory_mb=1500)
    assert errors == [] and len(warnings) == 2
    assert verdict(cluster, "lb1", cpus=1, memory_mb=500) == ([], [])


def test_a_live_clusters_other_ca_is_refused(clusters):
    cluster = clusters["lab-ha"]
    path = "/etc/kubernetes/pki/ca.crt"
    same = verdict(cluster, "cp1", local_ca={path: "a" * 64}, ca_sha256={path: "a" * 64})
    assert same[0] == []
    fresh = verdict(cluster, "cp1", local_ca={path: "a" * 64}, ca_sha256={path: None})
    assert fresh[0] == []
    errors, _ = verdict(cluster, "cp1", local_ca={path: "a" * 64}, ca_sha256={path: "b" * 64})
    assert len(errors) == 1 and errors[0].startswith(f"cp1: {path} is another CA")
    assert "would replace a live cluster's CA" in errors[0]


def test_warnings(clusters):
    cluster = clusters["lab-ha"]
    _, warnings = verdict(cluster, "w1", container="systemd-nspawn", swap={"active": ["/dev/sda2"], "fstab": []},
                          firewalls=["firewalld"], containerd={"version": "1.6.20"},
                          time={"service": "chrony", "synchronized": False})
    text = "\n".join(warnings)
    assert "swap is on" in text and "firewalld" in text and "containerd 1.6.20" in text
    assert "not synchronized" not in text, "a container's clock is the machine's"


def test_ca_files_checked_per_role(clusters, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEHA_STATE_DIR", str(tmp_path))
    data = SimpleNamespace(pki_dir="/etc/kubernetes/pki", etcd_pki_dir="/etc/etcd/pki")
    cluster = clusters["lab-ha"]
    import cluster.context as context
    monkeypatch.setattr(context, "cluster", lambda: cluster)
    context.secrets.cache_clear()
    try:
        plane = ops.ca_files(cluster, ("control_plane", "etcd"), data)
        assert sorted(plane) == ["/etc/etcd/pki/ca.crt", "/etc/kubernetes/pki/ca.crt",
                                 "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/front-proxy-ca.crt"]
        assert ops.ca_files(cluster, ("worker",), data) == {}
        assert all(path.is_file() for path in plane.values())
    finally:
        context.secrets.cache_clear()


def test_an_external_load_balancer_named_by_dns_is_left_to_dns(tmp_path):
    path = local_copy(CLUSTER_FILES["topology-b"], tmp_path, **{
        "api.mode": "external", "api.vip": None, "api.external_address": "api.example.internal",
        "hosts": [{"name": "cp1", "address": "192.168.10.21", "roles": ["control_plane", "etcd"]},
                  {"name": "w1", "address": "192.168.10.31", "roles": ["worker"]}]})
    cluster, problems = validate(path)
    assert not problems, problems
    assert ops.hosts_entries(cluster, cluster.host("cp1")) == ["192.168.10.21 cp1", "192.168.10.31 w1"]
    _, warnings = ops.findings(cluster, cluster.host("cp1"), facts(), {})
    assert any("DNS must resolve it" in w for w in warnings)
