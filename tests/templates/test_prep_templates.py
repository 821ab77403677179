"""The files prep writes, rendered for every example and lab cluster file and checked by what
reads them: the nftables table by `nft -c`, and for real in two network namespaces made here;
the firewall unit by `systemd-analyze verify`; the /etc/hosts block, the chrony drop-in, the
modules and apt proxy files by their content.

Nothing leaves this machine: the firewall test talks between two private network namespaces.
The tools come from Debian packages; a missing one fails the test with the package to install.
"""

import configparser
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from cluster import firewall, system
from cluster.render import render
from support import cluster_copy

TOOLS = {"nft": "nftables", "systemd-analyze": "systemd", "unshare": "util-linux", "nsenter": "util-linux",
         "ip": "iproute2"}


def tool(name):
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if Path(p).exists()), None)
    if not path:
        pytest.fail(f"{name} is not installed: apt-get install {TOOLS[name]}", pytrace=False)
    return path


def test_firewall_table_passes_nft_check(any_cluster, tmp_path):
    nft = tool("nft")
    loaded = any_cluster
    for node in loaded.hosts:
        text, values = firewall.rules(loaded, node), firewall.values(loaded, node)
        rules = tmp_path / f"{node.name}.nft"
        rules.write_text(text)
        result = subprocess.run([nft, "-c", "-f", str(rules)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"nft -c -f {rules}:\n{result.stderr}"
        assert values["sources_v4"] == [loaded.network.node_cidr, loaded.network.pod_cidr, loaded.network.service_cidr]
        tcp = values["tcp_ports"]
        assert {str(loaded.api.port), "6443", "2379-2380", "10250", "10257", "10259", "179", "5473"} <= set(tcp)
        assert values["udp_ports"] == ["4789"]
        assert not any(p.startswith("3") and len(p) == 5 for p in tcp), "NodePorts stay open"
        rules_only = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert "policy drop" not in rules_only and "flush" not in rules_only
        assert "\ntable inet kubeha\ndelete table inet kubeha\n" in text, "replaces only its own table"


def test_nft_check_catches_a_broken_table(tmp_path):
    """`nft -c` really parses: the check above would see a mistake."""
    broken = tmp_path / "broken.nft"
    broken.write_text("table inet kubeha {\n\tchain input {\n\t\ttcp dport { 6443 drop\n\t}\n}\n")
    assert subprocess.run([tool("nft"), "-c", "-f", str(broken)], capture_output=True).returncode != 0


FIREWALL_SCRIPT = r"""
set -e
ip link set lo up
unshare --net sleep 30 & CLIENT=$!
trap 'kill $CLIENT $SERVER 2>/dev/null || true' EXIT
sleep 0.2
ip link add kh0 type veth peer name kh1 netns $CLIENT
ip addr add @node_server@/24 dev kh0; ip addr add @other_server@/24 dev kh0; ip link set kh0 up
C="nsenter -t $CLIENT -n"
$C ip link set lo up; $C ip addr add @node_client@/24 dev kh1; $C ip addr add @other_client@/24 dev kh1
$C ip link set kh1 up
# a table of someone else's (kube-proxy, Calico, the distribution) that must survive ours
nft -f - <<'EOF'
table ip others {
	chain input {
		type filter hook input priority 0; policy accept;
		counter
	}
}
EOF
nft -f @rules@
nft -f @rules@
python3 -c '
import socket, threading, time
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(8)
    while True:
        s.accept()[0].close()
for port in (6443, 2379, 10250, 2222):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
time.sleep(15)' & SERVER=$!
sleep 0.5
probe() {
  $C python3 -c "
import socket
s = socket.socket(); s.settimeout(0.4); s.bind(('$1', 0))
try:
    s.connect(('$2', $3)); print('open', '$1', $3)
except OSError as e:
    print('closed', '$1', $3)"
}
for port in 6443 2379 10250 2222; do probe @node_client@ @node_server@ $port; probe @other_client@ @other_server@ $port; done
echo "tables: $(nft list tables | tr '\n' ' ')"
nft delete table inet kubeha
echo "after stop: $(nft list tables | tr '\n' ' ')"
probe @other_client@ @other_server@ 6443
"""


def test_firewall_table_lets_only_the_cluster_reach_its_ports(tmp_path):
    """Two network namespaces joined by a veth pair: one holds the table and listens, the other
    connects from an address in network.node_cidr and from one outside every cluster network."""
    for name in ("nft", "unshare", "nsenter", "ip"):
        tool(name)
    cluster, _ = cluster_copy("lab-ha", tmp_path)
    rules = tmp_path / "kubeha.nft"
    rules.write_text(firewall.rules(cluster, cluster.host("cp1")))
    # node_cidr is the lab's 10.123.0.0/24; 10.124.0.0/24 is in none of the cluster's networks
    script = FIREWALL_SCRIPT
    for name, value in {"rules": str(rules), "node_server": "10.123.0.21", "node_client": "10.123.0.50",
                        "other_server": "10.124.0.1", "other_client": "10.124.0.5"}.items():
        script = script.replace(f"@{name}@", value)
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for port in (6443, 2379, 10250):
        assert f"open 10.123.0.50 {port}" in lines, result.stdout
        assert f"closed 10.124.0.5 {port}" in lines, result.stdout
    assert "open 10.124.0.5 2222" in lines, "other ports are left alone"
    assert "tables: table ip others table inet kubeha " in lines, "loading twice keeps one table, others intact"
    assert "after stop: table ip others " in lines
    assert lines[-1] == "open 10.124.0.5 6443", "deleting the table (the unit's stop) opens the ports again"


def test_firewall_unit_verifies(tmp_path):
    analyze = tool("systemd-analyze")
    unit = tmp_path / "kubeha-firewall.service"
    unit.write_text(firewall.unit(nft=tool("nft")))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.read_string(unit.read_text())
    assert parsed["Service"]["ExecStop"].endswith("nft delete table inet kubeha"), "stops only its own table"
    assert parsed["Service"]["ExecReload"].endswith("-f /etc/kubeha/kubeha.nft")


def test_hosts_block_resolves_the_endpoint_per_host(any_cluster):
    loaded = any_cluster
    for node in loaded.hosts:
        lines = system.hosts_entries(loaded, node)
        assert lines[:len(loaded.hosts)] == [f"{h.address} {h.name}" for h in loaded.hosts]
        expected = loaded.endpoint_address_for(node)
        assert lines[-1] == f"{expected} {loaded.api.endpoint_name}"
        if loaded.uses_localhost_proxy(node):
            assert expected == "127.0.0.1"
        elif loaded.api.vip:
            assert expected == loaded.api.vip


def test_sysctls_are_net_only():
    assert system.SYSCTLS == {"net.bridge.bridge-nf-call-iptables": 1, "net.bridge.bridge-nf-call-ip6tables": 1,
                              "net.ipv4.ip_forward": 1}


def test_chrony_runs_in_a_container_without_setting_the_clock(any_cluster):
    node = any_cluster.hosts[0]
    text = render("chrony-container.conf.j2", node=node, container="systemd-nspawn")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["[Unit]", "ConditionCapability=", "[Service]", "ExecStart=",
                     "ExecStart=!/usr/sbin/chronyd $DAEMON_OPTS $OPTIONS -x"]


def test_small_files():
    modules = render("kubeha-modules.conf.j2", modules=system.MODULES)
    assert [line for line in modules.splitlines() if not line.startswith("#")] == ["overlay", "br_netfilter"]
    proxy = render("apt-proxy.conf.j2", proxy="http://10.123.0.1:3142")
    assert proxy.splitlines()[-1] == 'Acquire::http::Proxy "http://10.123.0.1:3142";'


def test_packages_per_family(any_cluster):
    debian, rhel = system.packages(any_cluster, "debian"), system.packages(any_cluster, "rhel")
    for wanted in ("conntrack", "socat", "nftables", "iptables", "ipset", "chrony", "curl"):
        assert wanted in debian
    for wanted in ("conntrack-tools", "socat", "nftables", "iptables-nft", "container-selinux", "chrony"):
        assert wanted in rhel
    assert "curl" not in rhel, "curl-minimal is there; installing curl would conflict with it"
    assert len(set(debian)) == len(debian)


def test_chrony_drop_in_replaces_the_units_start(tmp_path):
    """systemd reads the drop-in over a unit shaped like Debian's chrony.service: one ExecStart
    (the drop-in resets the unit's), the capability condition gone. Without the reset systemd
    refuses the unit, so verify really reads the drop-in."""
    analyze = tool("systemd-analyze")
    chronyd = tmp_path / "chronyd"
    chronyd.write_text("#!/bin/sh\n")
    chronyd.chmod(0o755)
    unit = tmp_path / "chrony.service"
    unit.write_text(textwrap.dedent(f"""\
        [Unit]
        Description=stand-in for the distribution's chrony.service
        ConditionCapability=CAP_SYS_TIME

        [Service]
        Type=forking
        PIDFile=/run/chrony/chronyd.pid
        EnvironmentFile=-/etc/default/chrony
        ExecStart=!{chronyd} $DAEMON_OPTS

        [Install]
        WantedBy=multi-user.target
        """))
    drop_in = tmp_path / "chrony.service.d" / "kubeha-container.conf"
    drop_in.parent.mkdir()
    text = render("chrony-container.conf.j2", node=SimpleNamespace(name="k1"), container="systemd-nspawn")
    drop_in.write_text(text.replace("/usr/sbin/chronyd", str(chronyd)))
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, env=env,
                            timeout=30)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    drop_in.write_text(drop_in.read_text().replace("ExecStart=\n", ""))
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, env=env,
                            timeout=30)
    assert "more than one ExecStart" in result.stdout + result.stderr
