"""The host reset's commands (operations/reset.py), run for real where they can be: the network
cleanup in a network namespace of its own, holding kube-proxy's and Calico's rules, chains,
tables, interfaces and routes beside others that must stay (an SSH rule, another chain, another
table, another interface and route, the FORWARD policy); and what each step plans from a
footprint."""

import os
import shutil
import subprocess

import pytest

from facts.host import KubehaFootprint
from operations import reset
from support import shipped

SETUP = r"""
set -e
iptables-nft -t nat -N KUBE-SERVICES
iptables-nft -t nat -N KUBE-SVC-ABC
iptables-nft -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables-nft -t nat -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -j KUBE-SVC-ABC
iptables-nft -N KUBE-FIREWALL
iptables-nft -A INPUT -j KUBE-FIREWALL
iptables-nft -A INPUT -p tcp --dport 22 -j ACCEPT
iptables-nft -N cali-INPUT
iptables-nft -A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
iptables-nft -A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m mark --mark 0x10000/0x10000 -j ACCEPT
iptables-nft -N OTHER
iptables-nft -A OTHER -j RETURN
iptables-nft -A FORWARD -j OTHER
iptables-nft -P FORWARD DROP
ip6tables-nft -N KUBE-FORWARD
ip6tables-nft -A FORWARD -j KUBE-FORWARD
if iptables-legacy -N KUBE-KUBELET-CANARY 2>/dev/null; then iptables-legacy -A OUTPUT -j KUBE-KUBELET-CANARY; fi
nft add table ip kube-proxy
nft add table inet kubeha
nft add table ip others
ip link add cali0123456789a type veth peer name eth9
ip link add vxlan.calico type vxlan id 4096 dstport 4789
ip link add keep0 type veth peer name keep1
ip link set keep0 up
ip route add blackhole 10.244.1.0/26 proto 80
ip route add blackhole 10.99.0.0/24
"""
STATE = r"""
echo '--- saved'; iptables-nft-save | grep -v '^#'; ip6tables-nft-save | grep -v '^#'
iptables-legacy-save 2>/dev/null | grep -v '^#'
echo '--- nft'; nft list tables
echo '--- links'; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'
echo '--- routes'; ip route show
"""


def tool(name):
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


def in_a_network_namespace(script):
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_network_cleanup_removes_what_is_kube_proxys_and_calicos_and_nothing_else():
    missing = [name for name in ("unshare", "iptables-nft", "nft", "ip") if not tool(name)]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {', '.join(missing) or 'a network namespace'}")
    fact = KubehaFootprint()
    probe = fact.command(**{**reset.footprint_args(shipped("lab-ha")), "paths": [], "units": [], "marked": []})
    footprint = fact.process(in_a_network_namespace(SETUP + f"\nset +e\n{probe}").splitlines())
    assert footprint["chains"]["iptables-nft"] == {"filter": ["KUBE-FIREWALL", "cali-INPUT"],
                                                   "nat": ["KUBE-SERVICES", "KUBE-SVC-ABC"]}
    assert footprint["chains"]["ip6tables-nft"] == {"filter": ["KUBE-FORWARD"]}
    assert sorted(footprint["nft_tables"]) == ["inet kubeha", "ip kube-proxy"]
    assert sorted(footprint["links"]) == ["cali0123456789a", "vxlan.calico"]
    assert footprint["routes"] == ["blackhole 10.244.1.0/26 proto 80"]

    cleanup = "\n".join(command for _, command in reset.network(footprint))
    after = in_a_network_namespace(SETUP + f"\n{cleanup}\nset +e\n{STATE}\n{probe}")
    state, _, probed = after.partition("#kubeha:paths")
    assert fact.process(("#kubeha:paths" + probed).splitlines()) == fact.default(), "nothing of theirs is left"
    saved = state.split("--- saved")[1].split("--- nft")[0]
    assert "KUBE-" not in saved and "cali" not in saved, saved
    for kept in (":FORWARD DROP", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", ":OTHER - [0:0]",
                 "-A FORWARD -j OTHER", "-A OTHER -j RETURN"):
        assert kept in saved, f"{kept} was touched:\n{saved}"
    assert "table ip others" in state and "table inet kubeha" not in state
    links = state.split("--- links")[1].split("--- routes")[0].split()
    assert {"keep0", "keep1"} <= set(links) and "vxlan.calico" not in links and "eth9" not in links
    assert "blackhole 10.99.0.0/24" in state and "10.244.1.0/26" not in state
    assert reset.network(fact.process(("#kubeha:paths" + probed).splitlines())) == [], "a second cleanup does nothing"


def footprint(**found):
    return {**KubehaFootprint.default(), **found}


def test_each_step_plans_only_what_the_host_holds():
    held = footprint(
        paths=["/var/lib/kubelet", "/var/lib/kubeha-etcd", "/usr/local/bin/kubeadm", "/etc/kubernetes",
               "/etc/systemd/system/kubelet.service", "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
               "/etc/kubeha"],
        units={"kubelet": {"active": True, "enabled": True}, "etcd": {"active": True, "enabled": True},
               "haproxy": {"active": True, "enabled": True}, "containerd": {"active": False, "enabled": False}},
        mounts=["/var/lib/kubelet/pods/a/volumes/x", "/var/lib/kubelet/pods/a/volumes/x/y"], pods=2,
        marked=["/etc/containerd/certs.d/docker.io/hosts.toml"])
    commands = {name: [c for _, c in getattr(reset, name)(held)]
                for name in ("stop_workloads", "stop_control_plane", "move_data_aside", "kubeadm_reset",
                             "stop_services", "remove_files")}
    assert commands["stop_workloads"][0] == "systemctl stop kubelet"
    assert "crictl stop" in commands["stop_workloads"][1] and "crictl rmp --force" in commands["stop_workloads"][2]
    assert commands["stop_control_plane"][0].startswith("crictl rmp --all --force")
    assert commands["stop_control_plane"][1].startswith("umount /var/lib/kubelet/pods/a/volumes/x/y "), \
        "deepest first"
    assert commands["move_data_aside"][0].startswith('if [ -n "$(ls -A /var/lib/kubelet)" ]; then mv /var/lib/kubelet ')
    assert commands["move_data_aside"][1] == "systemctl stop etcd", "etcd stops before its data moves"
    assert commands["kubeadm_reset"] == ["/usr/local/bin/kubeadm reset -f --skip-phases=remove-etcd-member"]
    # haproxy is not kubeha's here: its configuration is the package's
    assert commands["stop_services"] == ["systemctl disable --now kubelet", "systemctl disable --now etcd"]
    assert "rm -rf /var/lib/kubelet" not in commands["remove_files"], "data is moved aside, never deleted"
    assert commands["remove_files"][-2:] == [
        "rmdir --ignore-fail-on-non-empty /etc/systemd/system/kubelet.service.d", "systemctl daemon-reload"]
    assert "rm -f /etc/containerd/certs.d/docker.io/hosts.toml" in commands["remove_files"]
    clean = footprint()
    assert all(getattr(reset, name)(clean) == [] for name in commands) and reset.network(clean) == []


def test_an_lb_host_whose_configuration_is_kubehas_stops_haproxy_and_keepalived():
    lb = footprint(units={"haproxy": {"active": True, "enabled": True}, "keepalived": {"active": True, "enabled": True}},
                   marked=["/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf"])
    assert [c for _, c in reset.stop_services(lb)] == ["systemctl disable --now haproxy",
                                                       "systemctl disable --now keepalived"]


def test_no_step_flushes_a_whole_table_or_touches_sshd():
    source = (reset.__file__ and open(reset.__file__).read())
    for forbidden in ("iptables -F", "iptables -X", "-t nat -F", "flush ruleset", "sshd", "--flush"):
        assert forbidden not in source, forbidden


FAKE_CRICTL = r"""#!/bin/sh
# crictl as a node with two workload pods and a control plane's: ps/pods answer, stop/rmp are logged
echo "$*" >> "$LOG"
case "$*" in
  "ps -q --name ^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kube-vip)\$") echo c-apiserver; echo c-etcd;;
  "ps -q") echo c-apiserver; echo c-web; echo c-etcd; echo c-calico;;
  "pods -q --namespace kube-system --name ^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kube-vip)-")
    echo p-apiserver; echo p-etcd;;
  "pods -q") echo p-apiserver; echo p-web; echo p-etcd; echo p-calico;;
  "rmp --force p-web") exit 1;;  # its network teardown failed
esac
"""


def test_the_workloads_go_first_and_the_control_plane_stays_until_the_next_step(tmp_path):
    crictl = tmp_path / "crictl"
    crictl.write_text(FAKE_CRICTL)
    crictl.chmod(0o755)
    log = tmp_path / "log"
    steps = reset.stop_workloads(footprint(pods=4))
    script = "\n".join(command for _, command in steps)
    result = subprocess.run(["sh", "-ec", script], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "LOG": str(log)})
    assert result.returncode == 0, result.stderr
    acted = [line for line in log.read_text().splitlines() if line.startswith(("stop", "rmp"))]
    assert acted == ["stop --timeout 10 c-web", "stop --timeout 10 c-calico", "rmp --force p-web",
                     "rmp --force p-calico"]
    assert "kubeha: pod p-web was not removed" in result.stderr, "a failure is reported, not fatal"
