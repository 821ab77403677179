"""The API endpoint's stages (load balancer, kube-vip, the workers' API proxy) planned by pyinfra
against the @fake connector (tests/support.py: fake_pyinfra): which hosts get which changes, for
a fresh cluster and for hosts whose files are already right. No host and none of the files'
addresses is ever contacted.
"""

import re

import pytest

from cluster import api_proxy, kube_vip, paths
from support import CLUSTER_FILES, cluster_copy, fake_pyinfra, local_copy, sha256_response

DEBIAN = {"-release": "/etc/os-release\nID=debian\nVERSION_ID=\"13\"\n---"}
NODE_STATE = "for f in /etc/kubernetes/kubelet.conf"  # the KubeNodeState fact's command
JOINED_CONTROL_PLANE = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
                        "/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kubelet/config.yaml"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Cluster copies and one state directory for the module (secrets are made once)."""
    return tmp_path_factory.mktemp("plan")


def plan(workdir, cluster_name, tasks, responses=None, diff=False, execute=False):
    """The stages planned (or, with `execute`, run against the fake hosts, which run nothing)."""
    return fake_pyinfra(local_copy(CLUSTER_FILES[cluster_name], workdir), workdir / "state",
                        " ".join(f"tasks/{task}.py" for task in tasks.split()),
                        {**(responses or {}), "*": DEBIAN}, execute=execute, diff=diff)


ALL_THREE = "loadbalancer kube_vip api_proxy"
LB_OPERATIONS = ("Install keepalived and haproxy", "Let haproxy bind the VIP while another lb host holds it",
                 "Write haproxy's configuration", "Write keepalived's check script",
                 "Write keepalived's configuration", "Run haproxy", "Run keepalived")
# Debian's haproxy package starts haproxy.service while installing: a fresh plan says it is stopped
PROXY_OPERATIONS = ("Install haproxy", "Stop the packaged haproxy service",
                    "Write the API proxy's unit and configuration", "Run the API proxy")


def test_fresh_ha_cluster_lb_hosts_get_the_lb_and_workers_the_proxy(workdir):
    """lab-ha (keepalived_haproxy, workers through a localhost proxy), every host fresh."""
    planned = plan(workdir, "lab-ha", ALL_THREE, diff=True)
    table, output = planned.changes, planned.output
    for operation in LB_OPERATIONS:
        assert table.get(operation) == {"lb1", "lb2"}, (operation, table)
    for operation in PROXY_OPERATIONS:
        assert table.get(operation) == {"w1", "w2"}, (operation, table)
    assert set(table) == set(LB_OPERATIONS + PROXY_OPERATIONS), "kube-vip has no part here"
    secrets = (workdir / "state" / "lab-ha" / "secrets.yaml").read_text()
    password = re.search(r"vrrp_password: '?([^'\n]+)'?", secrets).group(1)
    assert 1 <= len(password) <= 8, "keepalived reads at most 8 characters of a PASS password"
    assert password not in output, "the VRRP password is never printed, not even with --diff"
    assert output.count("+    server cp3 10.123.0.23:6443 check check-ssl verify none") == 4, \
        "haproxy.cfg on both lb hosts and the proxy's file on both workers list every control plane"
    # pyinfra plans an operation only up to its first command: the proxy's diff is its configuration's
    assert output.count("+    bind 127.0.0.1:6443") == 2


def test_fresh_compact_cluster_only_the_first_control_plane_gets_kube_vip(workdir):
    """lab-compact (kube_vip, workers through the VIP): no lb stage, no proxy, and kube-vip only
    where kubeadm init will run; the others wait for their join."""
    planned = plan(workdir, "lab-compact", ALL_THREE, diff=True)
    table, output = planned.changes, planned.output
    assert table == {"Write the kube-vip static pod": {"k1"}}, table
    assert kube_vip_manifests(output) == [("k1", paths.SUPER_ADMIN_CONF)]


def test_api_proxy_reloads_for_new_control_planes_and_restarts_for_another_program(workdir):
    """Run against the fake hosts: w1's unit is right but its configuration lists other control
    planes, so it is reloaded; w2's unit runs another program, so both files are written and the
    proxy restarted once (a reload would ask the old program to read the new one's file)."""
    cluster, _ = cluster_copy("lab-ha", workdir)
    unit = api_proxy.unit(cluster, "haproxy")
    unit_path = api_proxy.UNIT
    stale = {f"sha256sum {api_proxy.CONFIG}": "0" * 64 + f"  {api_proxy.CONFIG}"}
    responses = {
        "w1": {**sha256_response(unit_path, unit), **stale},
        "w2": {**sha256_response(unit_path, unit.replace("haproxy", "nginx")), **stale},
    }
    ran = plan(workdir, "lab-ha", "api_proxy", responses=responses, execute=True).commands
    systemctl = {node: [c for c in ran.get(node, []) if re.match(r"systemctl (daemon-reload|try-)", c)]
                 for node in ("w1", "w2")}
    assert systemctl["w1"] == ["systemctl try-reload-or-restart kubeha-api-proxy"], ran.get("w1")
    assert systemctl["w2"] == ["systemctl daemon-reload", "systemctl try-restart kubeha-api-proxy"], ran.get("w2")
    moved = [c.split()[-1] for c in ran["w2"] if c.startswith("chmod ") and " mv -f " in c]
    assert moved == ["/etc/kubeha/api-proxy.cfg", unit_path], "the configuration is in place before the restart"
    assert set(ran) == {"w1", "w2"}, "the other hosts are not even asked a fact"


def kube_vip_manifests(output):
    """(node, kubeconfig) of each kube-vip manifest the --diff output shows being written."""
    return re.findall(r"\+# Managed by kubeha \(tasks/kube_vip.py.*?kube-vip on (\S+)\.\n.*?"
                      r"\+# with (\S+)\.\n", output, re.S)


def test_kube_vip_after_init_and_joins_uses_admin_conf(workdir):
    cluster, _ = cluster_copy("lab-compact", workdir)
    during_init = kube_vip.manifest(cluster, cluster.host("k1"), paths.SUPER_ADMIN_CONF)
    responses = {
        # k1 ran kubeadm init with the super-admin manifest; k2 has joined; k3 has not
        "k1": {NODE_STATE: JOINED_CONTROL_PLANE + ["/etc/kubernetes/super-admin.conf"],
               **sha256_response(kube_vip.MANIFEST, during_init)},
        "k2": {NODE_STATE: JOINED_CONTROL_PLANE},
    }
    planned = plan(workdir, "lab-compact", "kube_vip", responses=responses, diff=True)
    table, output = planned.changes, planned.output
    assert table == {"Write the kube-vip static pod": {"k1", "k2"}}, table
    assert sorted(kube_vip_manifests(output)) == [("k1", paths.ADMIN_CONF), ("k2", paths.ADMIN_CONF)]


def test_kube_vip_converged_changes_nothing(workdir):
    cluster, _ = cluster_copy("lab-compact", workdir)
    responses = {
        plane.name: {NODE_STATE: JOINED_CONTROL_PLANE,
                     **sha256_response(kube_vip.MANIFEST, kube_vip.manifest(cluster, plane, paths.ADMIN_CONF))}
        for plane in cluster.control_planes
    }
    planned = plan(workdir, "lab-compact", "kube_vip", responses=responses)
    assert planned.plan and planned.changes == {}, planned.output
