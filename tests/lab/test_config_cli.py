"""The lab's cluster-file parsing, its command-line errors and the machine's apt sources
parsing. Needs no root and starts nothing."""

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab import capacity, config, machine_apt, rootfs
from lab.config import ConfigError
from lab.proc import LabError

REPO = Path(__file__).resolve().parents[2]
HA = REPO / "lab" / "clusters" / "ha.yaml"
COMPACT = REPO / "lab" / "clusters" / "compact.yaml"


def doc(path=HA):
    return yaml.safe_load(path.read_text())


# ---- cluster files --------------------------------------------------------------------------


def test_ha_cluster_file():
    lab = config.load(HA)
    assert lab.name == "lab-ha"
    assert [h.name for h in lab.hosts] == ["lb1", "lb2", "cp1", "cp2", "cp3", "w1", "w2"]
    assert lab.host("cp2").address == "10.123.0.22"
    assert lab.host("lb1").roles == ("lb",)
    assert (lab.gateway, lab.node_cidr, lab.prefixlen, lab.suite) == ("10.123.0.1", "10.123.0.0/24", 24, "trixie")
    assert lab.ssh_user == "kube"
    assert lab.ssh_key == "/var/lib/kubeha-lab/ssh/id_ed25519"
    assert lab.known_hosts == "/var/lib/kubeha-lab/ssh/known_hosts"
    assert lab.vips == ("10.123.0.10",)
    assert lab.host("w1").netns == "kubeha-lab-w1" and lab.host("w1").veth == "kh-w1"


def test_compact_cluster_file():
    lab = config.load(COMPACT)
    assert lab.name == "lab-compact"
    assert [(h.name, h.address) for h in lab.hosts] == [
        ("k1", "10.123.0.111"),
        ("k2", "10.123.0.112"),
        ("k3", "10.123.0.113"),
        ("k4", "10.123.0.114"),
    ]


def test_fingerprint_is_stable_and_tells_labs_apart():
    ha, ha2, compact = config.load(HA), config.load(HA), config.load(COMPACT)
    assert ha.fingerprint() == ha2.fingerprint()
    assert ha.fingerprint() != compact.fingerprint()
    assert config.LabConfig.from_dict(ha.to_dict()).fingerprint() == ha.fingerprint()


def test_defaults_when_lab_section_and_ssh_are_missing():
    d = doc()
    del d["lab"], d["ssh"]
    lab = config.parse(d)
    assert (lab.gateway, lab.suite, lab.ssh_user) == ("10.123.0.1", "trixie", "kube")
    assert lab.ssh_key == "/var/lib/kubeha-lab/ssh/id_ed25519"


def test_unknown_host_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"no host 'nope' in lab lab-ha \(hosts: lb1, lb2, cp1"):
        config.load(HA).host("nope")


def _broken(mutate):
    d = copy.deepcopy(doc())
    mutate(d)
    return d


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("hosts"), "'hosts' must be a non-empty list"),
        (lambda d: d.update(hosts=[]), "'hosts' must be a non-empty list"),
        (lambda d: d["hosts"][1].update(name="lb1"), "duplicate host name 'lb1'"),
        (lambda d: d["hosts"][1].update(address="10.123.0.11"), "already used by lb1"),
        (lambda d: d["hosts"][0].update(address="10.123.0.1"), "already used by lab.gateway"),
        (lambda d: d["hosts"][0].update(address="10.124.0.5"), "not a usable address"),
        (lambda d: d["hosts"][0].update(address="10.123.0.255"), "not a usable address"),
        (lambda d: d["hosts"][0].update(address="cp1.example"), "is not an IPv4 address"),
        (lambda d: d["hosts"][0].update(name="a-very-long-host-name"), "must match"),
        (lambda d: d["hosts"][0].update(name="LB1"), "must match"),
        (lambda d: d["hosts"][0].pop("address"), "missing 'address'"),
        (lambda d: d["network"].update(node_cidr="192.168.1.0/24"), "must lie inside the lab network"),
        (lambda d: d["network"].update(node_cidr="10.123.0.0/33"), "node_cidr"),
        (lambda d: d.pop("network"), "missing 'node_cidr'"),
        (lambda d: d["lab"].update(gateway="10.123.0.300"), "is not an IPv4 address"),
        (lambda d: d["lab"].update(suite="Trixie!"), "is not a Debian suite name"),
        (lambda d: d["api"].update(vip="10.123.0.21"), "api.vip 10.123.0.21 is already used by cp1"),
        (lambda d: d["ssh"].update(user="root"), "non-root user"),
        (lambda d: d["ssh"].update(key="id_ed25519"), "must be an absolute path"),
        (lambda d: d.update(name="Lab HA"), "name 'Lab HA'"),
    ],
)
def test_bad_cluster_files_are_refused_with_a_reason(mutate, message):
    with pytest.raises(ConfigError, match=message):
        config.parse(_broken(mutate), "test.yaml")


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        config.parse(["a", "list"])


# ---- command line -------------------------------------------------------------------------


def lab_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-B", "-m", "lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "required: CMD"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["ssh"], "required: name"),
        (["stop"], "required: name"),
        (["kill", "cp1"], "required: service"),
        (["cut"], "required: name"),
        (["status", "--bogus"], "unrecognized arguments: --bogus"),
        (["down", "w1", "--purge"], "it takes no host names"),
    ],
)
def test_usage_errors_exit_2(args, message):
    cp = lab_cli(*args)
    assert cp.returncode == 2, cp
    assert message in cp.stderr


def test_unknown_host_exits_2_before_anything_else():
    cp = lab_cli("--cluster", str(HA), "stop", "nosuchhost")
    assert cp.returncode == 2
    assert "no host 'nosuchhost' in lab lab-ha" in cp.stderr


def test_missing_cluster_file_exits_2(tmp_path):
    cp = lab_cli("up", "--cluster", str(tmp_path / "missing.yaml"))
    assert cp.returncode == 2
    assert "cannot read cluster file" in cp.stderr


def test_invalid_cluster_file_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhosts: [\n")
    cp = lab_cli("up", "--cluster", str(bad))
    assert cp.returncode == 2 and "not valid YAML" in cp.stderr
    bad.write_text(yaml.safe_dump(_broken(lambda d: d["hosts"][1].update(name="lb1"))))
    cp = lab_cli("up", "--cluster", str(bad))
    assert cp.returncode == 2 and "duplicate host name" in cp.stderr


def test_kubeha_cluster_env_is_the_default(tmp_path):
    import os

    env = {**os.environ, "KUBEHA_CLUSTER": str(tmp_path / "from-env.yaml")}
    cp = lab_cli("up", env=env)
    assert cp.returncode == 2 and "from-env.yaml" in cp.stderr


def test_help_lists_every_command():
    cp = lab_cli("--help")
    assert cp.returncode == 0
    for cmd in ("up", "down", "status", "ssh", "stop", "start", "kill", "cut", "heal"):
        assert cmd in cp.stdout


# ---- the machine's apt sources --------------------------------------------------------------

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.invalid/debian
Suites: bookworm

Enabled: no
Types: deb
URIs: http://disabled.invalid/debian
Suites: bookworm
"""


def test_find_mirror_from_deb822(tmp_path, monkeypatch):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(DEB822)
    (d / "other.list.disabled").write_text("deb http://other.invalid/debian bookworm main\n")
    monkeypatch.setattr(machine_apt, "SOURCES_DIR", d)
    monkeypatch.setattr(machine_apt, "SOURCES_LIST", tmp_path / "sources.list")
    m = machine_apt.find_mirror()
    assert m.debian == "http://mirror.invalid/debian"
    assert m.security == "http://mirror.invalid/debian-security"
    assert m.allowed() == [m.debian, m.security]


def test_find_mirror_from_one_line_sources(tmp_path, monkeypatch):
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://mirror.invalid/debian/ bookworm main\n"
    )
    monkeypatch.setattr(machine_apt, "SOURCES_DIR", tmp_path / "none")
    monkeypatch.setattr(machine_apt, "SOURCES_LIST", tmp_path / "sources.list")
    m = machine_apt.find_mirror()
    assert (m.debian, m.security) == ("https://mirror.invalid/debian", None)
    assert machine_apt.as_http(m.debian) == "http://mirror.invalid/debian"


def test_no_mirror_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_apt, "SOURCES_DIR", tmp_path / "none")
    monkeypatch.setattr(machine_apt, "SOURCES_LIST", tmp_path / "none.list")
    with pytest.raises(Exception, match="cannot find a Debian mirror"):
        machine_apt.find_mirror()


def test_apt_requirements_file_lists_what_up_installs():
    pkgs = machine_apt.required_packages()
    for p in ("debootstrap", "systemd-container", "iptables", "docker-registry", "openssh-client"):
        assert p in pkgs


# ---- a lab that grows, and what it needs of the machine ----------------------------------------


def _with_hosts(lab, *hosts):
    return dataclasses.replace(lab, hosts=tuple(config.Host(*h) for h in hosts))


def test_fingerprint_is_the_site_not_its_hosts():
    ha = config.load(HA)
    assert _with_hosts(ha, ("w9", "10.123.0.99", ("worker",))).fingerprint() == ha.fingerprint()
    assert dataclasses.replace(ha, suite="bookworm").fingerprint() != ha.fingerprint()


def test_a_running_lab_grows_by_the_hosts_a_file_adds_and_keeps_the_others():
    running = _with_hosts(config.load(HA), ("a", "10.123.0.51", ()), ("b", "10.123.0.52", ()))
    wanted = _with_hosts(running, ("b", "10.123.0.52", ()), ("c", "10.123.0.53", ()))
    grown, removed = running.grown_by(wanted)
    assert [h.name for h in grown.hosts] == ["b", "c", "a"] and removed == []
    pruned, removed = running.grown_by(wanted, prune=True)
    assert [h.name for h in pruned.hosts] == ["b", "c"] and [h.name for h in removed] == ["a"]


def test_a_kept_host_whose_address_the_file_gives_another_host_is_refused():
    running = _with_hosts(config.load(HA), ("a", "10.123.0.51", ()))
    wanted = _with_hosts(running, ("new", "10.123.0.51", ()))
    with pytest.raises(ConfigError, match=r"new has address 10.123.0.51, which the running lab's host a has"):
        running.grown_by(wanted)
    assert [h.name for h in running.grown_by(wanted, prune=True)[0].hosts] == ["new"]


def test_a_lab_that_does_not_fit_in_memory_is_refused_with_the_numbers():
    ha = config.load(HA)
    need = capacity.check_memory(ha, total_mib=24 * 1024)
    assert need == sum(capacity.machine_mib(h.roles) for h in ha.hosts)
    big = _with_hosts(ha, *((f"cp{i}", f"10.123.0.{100 + i}", ("control_plane", "etcd")) for i in range(30)))
    with pytest.raises(LabError, match=r"30 machines need about \d+ MiB .* this machine has 24576 MiB"):
        capacity.check_memory(big, total_mib=24 * 1024)


def test_the_lab_hosts_block_of_etc_hosts_follows_the_lab_and_keeps_the_rest(tmp_path):
    (tmp_path / "etc").mkdir()
    hosts = tmp_path / "etc/hosts"
    ha = config.load(HA)
    hosts.write_text("127.0.0.1\tlocalhost\n")
    rootfs.write_lab_hosts(tmp_path, ha)
    hosts.write_text(hosts.read_text() + "# BEGIN kubeha cluster hosts\n10.123.0.10 api\n# END kubeha cluster hosts\n")
    rootfs.write_lab_hosts(tmp_path, _with_hosts(ha, ("w9", "10.123.0.99", ())))
    assert hosts.read_text() == ("127.0.0.1\tlocalhost\n" + rootfs.LAB_HOSTS_BEGIN + "\n10.123.0.99\tw9\n"
                                 + rootfs.LAB_HOSTS_END + "\n# BEGIN kubeha cluster hosts\n10.123.0.10 api\n"
                                 "# END kubeha cluster hosts\n")
