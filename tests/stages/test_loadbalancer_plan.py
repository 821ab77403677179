"""The API endpoint's stages planned by pyinfra (`--dry`) against the @fake connector: which hosts
get which changes, for a fresh cluster and for hosts whose files are already right.

Each test runs `pyinfra tests/plan/fake_inventory.py tasks/<stage>.py --dry` on a local copy of
a lab cluster file; the fake hosts answer the fact commands from a JSON file of canned outputs.
No host and none of the files' addresses is ever contacted.
"""

import hashlib
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.model import load  # noqa: E402
from cluster.render import render  # noqa: E402
from operations import kube_vip  # noqa: E402

local_copy = runpy.run_path(str(ROOT / "tests" / "conftest.py"))["local_copy"]

DEBIAN = {"-release": "/etc/os-release\nID=debian\nVERSION_ID=\"13\"\n---"}
NODE_STATE = "for f in /etc/kubernetes/kubelet.conf"  # the KubeNodeState fact's command
JOINED_CONTROL_PLANE = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
                        "/etc/kubernetes/manifests/kube-apiserver.yaml", "/var/lib/kubelet/config.yaml"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Cluster copies and one state directory for the module (secrets are made once)."""
    return tmp_path_factory.mktemp("plan")


def plan(workdir, cluster_name, tasks, responses=None, diff=False, execute=False):
    """Runs the stage's plan (or, with `execute`, the stage itself against the fake hosts, which
    run nothing); returns ({operation: {node, ...} that would change}, output)."""
    cluster_file = local_copy(ROOT / "lab" / "clusters" / f"{cluster_name}.yaml", workdir)
    tasks = tasks.split()
    fake_state = workdir / f"fake-{cluster_name}-{'-'.join(tasks)}.json"
    fake_state.write_text(json.dumps({**(responses or {}), "*": DEBIAN}))
    env = {**os.environ, "KUBEHA_CLUSTER": str(cluster_file), "KUBEHA_STATE_DIR": str(workdir / "state"),
           "KUBEHA_FAKE_STATE": str(fake_state), "PYINFRA_FAKE_DELAY": "0", "PYINFRA_FAKE_DELAY_JITTER": "0"}
    args = ["pyinfra", "tests/plan/fake_inventory.py"] + [f"tasks/{task}.py" for task in tasks]
    args += ["-y", "-vv"] if execute else ["--dry"] + (["--diff"] if diff else [])
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return changes(output), output


def commands(output):
    """{node: [command, ...]} the fake hosts were given, fact commands included."""
    result = {}
    for node, command in re.findall(r"^\[@fake/(\S+)\]\s+>>> (.*)$", output, re.M):
        result.setdefault(node, []).append(command)
    return result


def changes(output):
    """The `Detected changes` table as {operation: {node names}}."""
    table = {}
    if "Detected changes" not in output:
        return table
    section = output.split("Detected changes", 1)[1].split("Detected changes may not", 1)[0]
    for line in section.splitlines()[2:]:
        match = re.match(r"^\s+(.+?)\s{2,}(?:\d+ \(([^)]*)\)|-)\s", line + " ")
        if match:
            hosts = {h.strip().removeprefix("@fake/") for h in (match.group(2) or "").split(",") if h.strip()}
            if hosts:  # an operation planned without change shows "-"
                table[match.group(1)] = hosts
    return table


def sha256_response(path, content):
    return {f"sha256sum {path}": f"{hashlib.sha256(content.encode()).hexdigest()}  {path}"}


ALL_THREE = "loadbalancer kube_vip api_proxy"
LB_OPERATIONS = ("Install keepalived and haproxy", "Let haproxy bind the VIP while another lb host holds it",
                 "Write haproxy's configuration", "Write keepalived's check script",
                 "Write keepalived's configuration", "Run haproxy", "Run keepalived")
# Debian's haproxy package starts haproxy.service while installing: a fresh plan says it is stopped
PROXY_OPERATIONS = ("Install haproxy", "Stop the packaged haproxy service",
                    "Write the API proxy's unit and configuration", "Run the API proxy")


def test_fresh_ha_cluster_lb_hosts_get_the_lb_and_workers_the_proxy(workdir):
    """lab-ha (keepalived_haproxy, workers through a localhost proxy), every host fresh."""
    table, output = plan(workdir, "ha", ALL_THREE, diff=True)
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
    table, output = plan(workdir, "compact", ALL_THREE, diff=True)
    assert table == {"Write the kube-vip static pod": {"k1"}}, table
    assert kube_vip_manifests(output) == [("k1", kube_vip.SUPER_ADMIN_CONF)]


def test_api_proxy_reloads_for_new_control_planes_and_restarts_for_another_program(workdir):
    """Run against the fake hosts: w1's unit is right but its configuration lists other control
    planes, so it is reloaded; w2's unit runs another program, so both files are written and the
    proxy restarted once (a reload would ask the old program to read the new one's file)."""
    cluster = load(local_copy(ROOT / "lab" / "clusters" / "ha.yaml", workdir))[0]
    unit = render("kubeha-api-proxy.service.j2", cluster=cluster, program="haproxy",
                  config="/etc/kubeha/api-proxy.cfg")
    unit_path = "/etc/systemd/system/kubeha-api-proxy.service"
    stale = {"sha256sum /etc/kubeha/api-proxy.cfg": "0" * 64 + "  /etc/kubeha/api-proxy.cfg"}
    responses = {
        "w1": {**sha256_response(unit_path, unit), **stale},
        "w2": {**sha256_response(unit_path, unit.replace("haproxy", "nginx")), **stale},
    }
    _, output = plan(workdir, "ha", "api_proxy", responses=responses, execute=True)
    ran = commands(output)
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
    cluster = load(local_copy(ROOT / "lab" / "clusters" / "compact.yaml", workdir))[0]
    during_init = kube_vip.manifest(cluster, cluster.host("k1"), kube_vip.SUPER_ADMIN_CONF)
    responses = {
        # k1 ran kubeadm init with the super-admin manifest; k2 has joined; k3 has not
        "k1": {NODE_STATE: JOINED_CONTROL_PLANE + ["/etc/kubernetes/super-admin.conf"],
               **sha256_response(kube_vip.MANIFEST, during_init)},
        "k2": {NODE_STATE: JOINED_CONTROL_PLANE},
    }
    table, output = plan(workdir, "compact", "kube_vip", responses=responses, diff=True)
    assert table == {"Write the kube-vip static pod": {"k1", "k2"}}, table
    assert sorted(kube_vip_manifests(output)) == [("k1", kube_vip.ADMIN_CONF), ("k2", kube_vip.ADMIN_CONF)]


def test_kube_vip_converged_changes_nothing(workdir):
    cluster = load(local_copy(ROOT / "lab" / "clusters" / "compact.yaml", workdir))[0]
    responses = {
        plane.name: {NODE_STATE: JOINED_CONTROL_PLANE,
                     **sha256_response(kube_vip.MANIFEST, kube_vip.manifest(cluster, plane, kube_vip.ADMIN_CONF))}
        for plane in cluster.control_planes
    }
    table, output = plan(workdir, "compact", "kube_vip", responses=responses)
    assert table == {}, output
