"""Resetting a whole cluster (reset.py), planned and run by pyinfra against the @fake connector:
the lab's compact cluster as deployed (canned footprints of what each machine holds). --dry lists
every deletion per host, a run stops at once without the confirmation, and with it every machine
is reset and the local state kept, or moved aside when asked. No host is contacted."""

import re

import pytest

from support import CLUSTER_FILES, fake_pyinfra, local_copy

NODES = ("k1", "k2", "k3", "k4")
RESET_STEPS = ("Reset: stop the kubelet and the workloads",
               "Reset: stop the control plane's pods, unmount the kubelet's volumes",
               "Reset: move the kubelet's and etcd's data aside",
               "Reset: kubeadm reset", "Reset: stop and disable kubeha's services",
               "Reset: remove kube-proxy's, Calico's and kubeha's network state", "Reset: remove the files kubeha wrote")


def footprint(name):
    member = name != "k4"
    return ["#kubeha:paths", "/var/lib/kubelet", *(["/var/lib/kubeha-etcd", "/etc/etcd"] if member else []),
            "/usr/local/bin/kubeadm", "/etc/kubernetes", "/etc/kubeha", "/opt/kubeha", "/etc/cni/net.d",
            "#kubeha:units", "kubelet LoadState=loaded ActiveState=active UnitFileState=enabled",
            *(["etcd LoadState=loaded ActiveState=active UnitFileState=enabled"] if member else []),
            "containerd LoadState=loaded ActiveState=active UnitFileState=enabled",
            "kubeha-firewall LoadState=loaded ActiveState=active UnitFileState=enabled",
            "#kubeha:marked", "/etc/containerd/certs.d/registry.k8s.io/hosts.toml", "#kubeha:mounts",
            "#kubeha:chains", "iptables-nft filter KUBE-FIREWALL cali-INPUT", "iptables-nft nat KUBE-SERVICES",
            "#kubeha:nft", "#kubeha:ipsets", "cali40all-ipam-pools", "#kubeha:links", "vxlan.calico",
            "cali0123456789a", "#kubeha:tunl0", "#kubeha:routes", "blackhole 10.244.1.0/26 proto 80",
            "#kubeha:pods", "5", "#kubeha:hosts_block", "yes"]


def run(workdir, execute=False, data=(), env=None):
    """reset.py's plan {operation: [nodes changed]}, or with `execute` its run ({node: [commands]},
    output, exit status)."""
    cluster_file = local_copy(CLUSTER_FILES["lab-compact"], workdir)
    # the fake hosts run every command successfully but the refusal, which fails as on a real host
    responses = {**{name: {"echo '#kubeha:paths'": footprint(name)} for name in NODES},
                 "*": {"kubeha: resetting": {"success": False}}}
    state = workdir / "state"
    (state / "lab-compact" / "pki").mkdir(parents=True, exist_ok=True)
    result = fake_pyinfra(cluster_file, state, "reset.py", responses, execute=execute, check=not execute, env=env,
                          data=data)
    if execute:
        return result.commands, result.output, result.returncode
    return {name: hosts for name, hosts in result.plan}, result.output


def test_a_dry_run_lists_every_deletion_on_every_host(tmp_path):
    plan, output = run(tmp_path)
    for step in RESET_STEPS:
        assert plan[step] == list(NODES), step
    for name in NODES:
        for deletion in ("stop the kubelet", "stop every container but the control plane's",
                         "remove every pod but the control plane's", "remove the 5 pods left",
                         "kubeadm reset (its etcd phase skipped)",
                         "stop and disable containerd", "stop and disable kubeha-firewall",
                         "iptables-nft filter: the rules of KUBE-FIREWALL cali-INPUT", "ipset cali40all-ipam-pools",
                         "route blackhole 10.244.1.0/26 proto 80", "interface vxlan.calico", "remove /etc/kubeha",
                         "remove /etc/containerd/certs.d/registry.k8s.io/hosts.toml (kubeha's)",
                         "move /var/lib/kubelet aside"):
            assert re.search(rf"\[@fake/{name}\]\s+reset: {re.escape(deletion)}", output), (name, deletion)
    for member in ("k1", "k2", "k3"):
        assert re.search(rf"\[@fake/{member}\]\s+reset: move /var/lib/kubeha-etcd aside", output)
    assert "not confirmed: a run (not --dry) stops here, before anything is reset" in output


def test_a_run_without_the_confirmation_resets_nothing(tmp_path):
    commands, output, code = run(tmp_path, execute=True)
    assert code != 0
    assert output.count("confirm with --data reset_confirm=lab-compact or KUBEHA_RESET_CONFIRM=lab-compact") >= 4
    resets = [c for cmds in commands.values() for c in cmds if re.search(r"kubeadm reset|systemctl (stop|disable)|rm -rf", c)]
    assert resets == [], resets
    (other,) = run(tmp_path, execute=True, data=["reset_confirm=another-cluster"])[:1]
    assert not [c for cmds in other.values() for c in cmds if "kubeadm reset" in c], "another name is no confirmation"


@pytest.mark.parametrize("how", ["data", "environment"])
def test_a_confirmed_run_resets_every_host_and_keeps_the_local_state(tmp_path, how):
    confirm = {"data": {"data": ["reset_confirm=lab-compact"]},
               "environment": {"env": {"KUBEHA_RESET_CONFIRM": "lab-compact"}}}[how]
    commands, output, code = run(tmp_path, execute=True, **confirm)
    assert code == 0, output[-3000:]
    for name in NODES:
        assert [c for c in commands[name] if c.startswith("/usr/local/bin/kubeadm reset -f")], name
        assert not [c for c in commands[name] if re.search(r"iptables(-nft)? -F|flush ruleset|rm -rf /var/lib/kubelet$", c)]
    assert (tmp_path / "state" / "lab-compact" / "pki").is_dir(), "the local state is kept"


def test_the_local_state_is_moved_aside_when_asked(tmp_path):
    commands, output, code = run(tmp_path, execute=True, data=["reset_confirm=lab-compact", "reset_local_state=move"])
    assert code == 0, output[-3000:]
    assert not (tmp_path / "state" / "lab-compact").exists()
    (aside,) = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("lab-compact.reset-")]
    assert (aside / "pki").is_dir(), "moved, never deleted"
