"""The API endpoint's templates, rendered for every example and lab cluster file and checked by
the programs that read them: haproxy -c, keepalived -t, nginx -t, systemd-analyze verify, sh.

Nothing here connects anywhere: the configurations name the cluster files' addresses, but the
checks only parse them (keepalived runs in a network namespace of its own, where the cluster's
interface is made as a veth pair so its check can find it). The tools come from Debian packages;
a missing one fails the test with the package to install.
"""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from cluster import api_proxy, kube_vip, loadbalancer, paths
from support import shipped, shipped_where

WITH_LB_HOSTS = shipped_where(lambda cluster: cluster.lb_hosts)
# stands in for the generated VRRP password (the plan tests check the real one never shows)
PASSWORD = "Kx9-pq_Z"

TOOLS = {  # program: Debian package
    "haproxy": "haproxy",
    "keepalived": "keepalived",
    "nginx": "nginx-light",
    "systemd-analyze": "systemd",
    "unshare": "util-linux",
    "ip": "iproute2",
}


def tool(name):
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if not path:
        pytest.fail(f"{name} is not installed: apt-get install {TOOLS[name]}", pytrace=False)
    return path


def run(args, secret=None, **kwargs):
    """Runs a checker; returns (exit code, its output with `secret` masked)."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, **kwargs)
    output = result.stdout + result.stderr
    if secret:
        output = output.replace(secret, "********")
    return result.returncode, output


def lb_files(cluster, host, directory, password):
    """keepalived.conf, its check script and haproxy.cfg for one lb host, written to `directory`."""
    script = directory / f"check_apiserver-{host.name}.sh"
    script.write_text(loadbalancer.check_script(cluster, host))
    script.chmod(0o755)
    keepalived = directory / f"keepalived-{host.name}.conf"
    keepalived.write_text(loadbalancer.keepalived_config(cluster, host, password, script=str(script)))
    keepalived.chmod(0o600)
    haproxy = directory / f"haproxy-{host.name}.cfg"
    haproxy.write_text(loadbalancer.haproxy_config(cluster, host))
    return keepalived, script, haproxy


def keepalived_blocks(text):
    """The values of keepalived's one-value keywords, and the lines of its `{ ... }` lists."""
    values = dict(re.findall(r"^\s*(state|priority|interface|virtual_router_id|unicast_src_ip|auth_pass|"
                             r"auth_type)\s+(\S+)\s*$", text, re.M))
    lists = {}
    for name in ("unicast_peer", "virtual_ipaddress"):
        match = re.search(name + r"\s*\{([^}]*)\}", text)
        lists[name] = match.group(1).split() if match else []
    return values, lists


def test_only_keepalived_haproxy_clusters_have_lb_hosts(any_cluster):
    assert bool(any_cluster.lb_hosts) == (any_cluster.api.mode == "keepalived_haproxy")


@pytest.mark.parametrize("name", WITH_LB_HOSTS)
def test_lb_configurations_pass_haproxy_and_keepalived_checks(name, tmp_path):
    loaded = shipped(name)
    password = PASSWORD
    haproxy, keepalived, unshare, ip = tool("haproxy"), tool("keepalived"), tool("unshare"), tool("ip")
    if os.geteuid() != 0:
        pytest.fail("keepalived -t runs in a network namespace of its own: run the tests as root", pytrace=False)
    for host in loaded.lb_hosts:
        keepalived_conf, script, haproxy_cfg = lb_files(loaded, host, tmp_path, password)
        code, output = run([haproxy, "-c", "-f", str(haproxy_cfg)])
        assert code == 0, f"haproxy -c rejects the lb configuration of {host.name}:\n{output}"
        interface = loaded.api.interface
        code, output = run([unshare, "--net", "sh", "-ec",
                            f'{ip} link add "$1" type veth peer name kubeha-peer; {keepalived} -t -f "$2"',
                            "sh", interface, str(keepalived_conf)], secret=password)
        assert code == 0, f"keepalived -t rejects the configuration of {host.name}:\n{output}"
        assert password not in output
        code, output = run(["sh", "-n", str(script)])
        assert code == 0, f"the check script of {host.name} is not valid sh:\n{output}"


@pytest.mark.parametrize("name", WITH_LB_HOSTS)
def test_vrrp_roles_peers_and_vip(name, tmp_path):
    loaded = shipped(name)
    password = PASSWORD
    prefix = loaded.network.node_cidr.split("/")[1]
    seen = []
    for index, host in enumerate(loaded.lb_hosts):
        keepalived_conf, _, _ = lb_files(loaded, host, tmp_path, password)
        values, lists = keepalived_blocks(keepalived_conf.read_text())
        assert values["state"] == ("MASTER" if index == 0 else "BACKUP"), host.name
        assert int(values["priority"]) == (101 if index == 0 else 100 - (index - 1)), host.name
        assert values["interface"] == loaded.api.interface
        assert values["auth_type"] == "PASS"
        assert values["auth_pass"] == password
        assert lists["virtual_ipaddress"] == [f"{loaded.api.vip}/{prefix}"]
        others = [h.address for h in loaded.lb_hosts if h != host]
        if others:
            assert values["unicast_src_ip"] == host.address
            assert lists["unicast_peer"] == others
        seen.append(values["virtual_router_id"])
    assert set(seen) == {str(loaded.api.virtual_router_id)}, "every lb host in the same VRRP router"
    assert oct(keepalived_conf.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("name", WITH_LB_HOSTS)
def test_haproxy_balances_over_every_control_plane(name):
    loaded = shipped(name)
    for host in loaded.lb_hosts:
        text = loadbalancer.haproxy_config(loaded, host)
        servers = re.findall(r"^\s*server (\S+) (\S+) (.*)$", text, re.M)
        assert [(name, address) for name, address, _ in servers] == [
            (plane.name, f"{plane.address}:{paths.APISERVER_PORT}") for plane in loaded.control_planes]
        assert all(options.split() == ["check", "check-ssl", "verify", "none"] for _, _, options in servers)
        assert "option httpchk GET /healthz" in text and "http-check expect status 200" in text
        assert "balance roundrobin" in text
        binds = re.findall(r"^\s*bind (\S+)", text, re.M)
        assert binds == [f"{loaded.api.vip}:{loaded.api.port}", f"{host.address}:{loaded.api.port}",
                         f"{host.address}:{paths.HAPROXY_STATS_PORT}"]


def fake_tools(directory, curl_fails_for=(), holds_vip=False):
    """curl and ip stand-ins that log their arguments, for running the check script here."""
    log = directory / "calls.log"
    directory.joinpath("curl").write_text(
        "#!/bin/sh\n"
        f'echo "curl $*" >> {log}\n'
        f'for url in "$@"; do case "$url" in {"|".join(curl_fails_for) or "none"}) exit 22;; esac; done\n'
        "exit 0\n")
    directory.joinpath("ip").write_text(
        "#!/bin/sh\n"
        f'echo "ip $*" >> {log}\n'
        + ('echo "2: eth0    inet $5/24 scope global secondary eth0"\n' if holds_vip else "")
        + "exit 0\n")
    for name in ("curl", "ip"):
        directory.joinpath(name).chmod(0o755)
    return log


@pytest.mark.parametrize("case", ["healthy", "haproxy down", "vip held, healthy", "vip held, vip dead"])
def test_check_script_behaviour(case, tmp_path):
    cluster = shipped("lab-ha")
    host = cluster.lb_hosts[0]
    script = tmp_path / "check.sh"
    script.write_text(loadbalancer.check_script(cluster, host))
    own = f"https://{host.address}:{cluster.api.port}/healthz"
    vip = f"https://{cluster.api.vip}:{cluster.api.port}/healthz"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fails = {"healthy": (), "haproxy down": (own,), "vip held, healthy": (),
             "vip held, vip dead": (vip,)}[case]
    log = fake_tools(bin_dir, curl_fails_for=fails, holds_vip=case.startswith("vip held"))
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=10,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    calls = log.read_text().splitlines()
    curls = [call.split()[-1] for call in calls if call.startswith("curl")]
    assert result.returncode == (1 if fails else 0), result.stderr
    if case == "haproxy down":
        assert curls == [own], "stops at the first failure"
        assert own in result.stderr
    elif case.startswith("vip held"):
        assert curls == [own, vip]
    else:
        assert curls == [own], "the VIP is asked only by the host that holds it"
    assert any(call == f"ip -o addr show to {cluster.api.vip}" for call in calls) or case == "haproxy down"


@pytest.mark.parametrize("program", ["haproxy", "nginx"])
def test_api_proxy_configuration_passes_its_program_check(any_cluster, tmp_path, program):
    """Each worker's proxy configuration, whichever program and whether or not the cluster file
    asks for the proxy: what the deploy would write if it did."""
    loaded = any_cluster
    workers = loaded.group("worker")
    assert workers, "every example and lab cluster has workers"
    checker = tool(program)
    if program == "nginx" and not os.path.exists(api_proxy.NGINX["debian"]["stream_module"]):
        pytest.fail("nginx's stream module is not installed: apt-get install libnginx-mod-stream", pytrace=False)
    for host in workers:
        path = tmp_path / f"api-proxy-{program}-{host.name}.cfg"
        text = api_proxy.config(loaded, host, program, "debian")
        path.write_text(text)
        args = [checker, "-c", "-f", str(path)] if program == "haproxy" else [checker, "-t", "-c", str(path)]
        code, output = run(args)
        assert code == 0, f"{program} rejects the API proxy configuration of {host.name}:\n{output}"
        listen = f"127.0.0.1:{loaded.api.port}"
        if program == "haproxy":
            assert re.findall(r"^\s*bind (\S+)", text, re.M) == [listen]
            assert "balance leastconn" in text and "option httpchk GET /healthz" in text
            servers = re.findall(r"^\s*server \S+ (\S+) check check-ssl verify none$", text, re.M)
        else:
            assert re.findall(r"^\s*listen (\S+);", text, re.M) == [listen]
            assert "least_conn;" in text
            servers = re.findall(r"^\s*server (\S+) max_fails=\d+ fail_timeout=\d+s;", text, re.M)
        assert servers == [f"{plane.address}:{paths.APISERVER_PORT}" for plane in loaded.control_planes]


@pytest.mark.parametrize("program", ["haproxy", "nginx"])
def test_api_proxy_unit_verifies(any_cluster, tmp_path, program):
    analyze = tool("systemd-analyze")
    tool(program)
    unit = tmp_path / "kubeha-api-proxy.service"
    unit.write_text(api_proxy.unit(any_cluster, program))
    code, output = run([analyze, "verify", str(unit)])
    assert code == 0 and not output.strip(), f"systemd-analyze verify:\n{output}"
    text = unit.read_text()
    assert "Before=kubelet.service" in text
    assert f"-c -q -f {api_proxy.CONFIG}" in text or f"-t -q -c {api_proxy.CONFIG}" in text
    assert re.findall(r"^ExecReload=(\S+)", text, re.M)[0].endswith(program), "checks before reloading"


def env_of(container):
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("kubeconfig", [paths.SUPER_ADMIN_CONF, paths.ADMIN_CONF])
def test_kube_vip_manifest_is_a_valid_static_pod(any_cluster, kubeconfig):
    """The Pod schema's essentials, checked by hand (no schema validator works offline)."""
    loaded = any_cluster
    for host in loaded.control_planes:
        pod = yaml.safe_load(kube_vip.manifest(loaded, host, kubeconfig))
        assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
        assert pod["metadata"]["name"] == "kube-vip" and pod["metadata"]["namespace"] == "kube-system"
        spec = pod["spec"]
        assert set(spec) <= {"containers", "hostAliases", "hostNetwork", "priority", "priorityClassName",
                             "volumes"}
        assert spec["hostNetwork"] is True
        assert spec["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}]
        (container,) = spec["containers"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", container["name"])
        assert container["image"] == f"{loaded.kube_vip.image}:v{loaded.kube_vip.version}"
        assert container["imagePullPolicy"] in ("IfNotPresent", "Always", "Never")
        assert container["args"] == ["manager"]
        for item in container["env"]:
            assert set(item) in ({"name", "value"}, {"name", "valueFrom"}), item
            if "value" in item:
                assert isinstance(item["value"], str), f"env {item['name']}: a Pod's env values are strings"
        env = env_of(container)
        assert env["address"] == loaded.api.vip
        assert env["vip_interface"] == loaded.api.interface
        assert env["port"] == str(loaded.api.port)
        assert env["vip_arp"] == env["cp_enable"] == env["vip_leaderelection"] == "true"
        assert env["cp_namespace"] == "kube-system"
        assert env["vip_nodename"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        capabilities = container["securityContext"]["capabilities"]
        assert {"NET_ADMIN", "NET_RAW"} <= set(capabilities["add"])
        assert container["securityContext"].get("privileged") is not True
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert len(volumes) == len(spec["volumes"]), "volume names are unique"
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes, f"volumeMount {mount['name']} names no volume"
            assert mount["mountPath"].startswith("/")
        (mount,) = container["volumeMounts"]
        assert mount["mountPath"] == "/etc/kubernetes/admin.conf", "where kube-vip reads its kubeconfig"
        assert volumes[mount["name"]]["hostPath"] == {"path": kubeconfig, "type": "File"}


def test_kube_vip_kubeconfig_follows_the_node_state():
    fresh = {"role": None}
    assert kube_vip.kubeconfig_for(fresh, first_control_plane=True) == paths.SUPER_ADMIN_CONF
    assert kube_vip.kubeconfig_for(fresh, first_control_plane=False) is None, "kubeadm join wants no manifest"
    joined = {"role": "control_plane"}
    assert kube_vip.kubeconfig_for(joined, first_control_plane=True) == paths.ADMIN_CONF
    assert kube_vip.kubeconfig_for(joined, first_control_plane=False) == paths.ADMIN_CONF
