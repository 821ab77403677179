"""Every case of the cluster file's validation: a cluster file with one mistake is refused, naming the field."""

import copy
import re
import subprocess
import sys

import pytest
import yaml

from cluster import validation
from cluster.validation import validate, warnings_for
from support import CLUSTER_FILES, PROJECT, local_copy


@pytest.fixture
def base(tmp_path):
    """The lab's HA cluster file as data, made loadable here."""
    return yaml.safe_load(local_copy(CLUSTER_FILES["lab-ha"], tmp_path).read_text())


def problems_for(data, tmp_path):
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(data))
    _, problems = validate(path)
    return problems


def host(data, name):
    return next(h for h in data["hosts"] if h["name"] == name)


def set_roles(name, roles):
    def change(data):
        host(data, name)["roles"] = roles
    return change


def put(dotted, value):
    def change(data):
        section, _, key = dotted.partition(".")
        if key:
            data.setdefault(section, {})[key] = value
        else:
            data[section] = value
    return change


def drop(dotted):
    def change(data):
        section, _, key = dotted.partition(".")
        if key:
            data[section].pop(key, None)
        else:
            data.pop(section, None)
    return change


def add_host(entry):
    def change(data):
        data["hosts"].append(entry)
    return change


def remove_hosts(*names):
    def change(data):
        data["hosts"] = [h for h in data["hosts"] if h["name"] not in names]
    return change


def host_ssh(name, **login):
    def change(data):
        host(data, name)["ssh"] = login
    return change


def api_mode_none(data):
    put("api.mode", "none")(data)
    drop("api.vip")(data)
    remove_hosts("lb1", "lb2")(data)


def removing(*entries):
    """`remove:` with these entries; a host named by an entry leaves `hosts`, as when removing it."""
    def change(data):
        names = {e.get("name") for e in entries if isinstance(e, dict)}
        data["hosts"] = [h for h in data["hosts"] if h["name"] not in names]
        data["remove"] = list(entries)
    return change


def every_role_removed(role):
    def change(data):
        for entry in data["hosts"]:
            entry["roles"] = [r for r in entry["roles"] if r != role] or ["worker"]
    return change


CASES = {
    # field problems: name, types, syntax
    "missing name": (drop("name"), "name", "is required"),
    "bad cluster name": (put("name", "Lab HA!"), "name", "lower-case"),
    "unknown top-level key": (put("kubernets", {"version": "1.35.8"}), "kubernets", "did you mean 'kubernetes'"),
    "unknown nested key": (put("api.vipp", "10.123.0.10"), "api.vipp", "did you mean 'vip'"),
    "unknown host key": (lambda d: host(d, "w1").update(adress="10.123.0.31"), "hosts[w1].adress", "did you mean 'address'"),
    "section not a mapping": (put("api", "keepalived"), "api", "must be a mapping"),
    "wrong type": (put("api.port", "six"), "api.port", "whole number"),
    "bad choice": (put("api.mode", "keepalived"), "api.mode", "is not one of"),
    "bad ip": (put("api.vip", "10.123.0.300"), "api.vip", "is not an IP address"),
    "bad cidr": (put("network.pod_cidr", "10.244.0.0/33"), "network.pod_cidr", "CIDR"),
    "cidr with host bits": (put("network.service_cidr", "10.96.0.1/12"), "network.service_cidr", "CIDR"),
    "bad version": (put("kubernetes.version", "latest"), "kubernetes.version", "not a version"),
    "bad url": (put("offline.files_url", "ftp://mirror"), "offline.files_url", "http(s) URL"),
    # hosts and groups
    "no hosts": (put("hosts", []), "hosts", "lists no host"),
    "duplicate name": (lambda d: host(d, "w2").update(name="w1"), "hosts[w1].name", "used by two hosts"),
    "duplicate address": (lambda d: host(d, "w2").update(address="10.123.0.31"), "hosts[w2].address", "also the address of w1"),
    "bad host name": (lambda d: host(d, "w2").update(name="W_2"), "hosts[W_2].name", "DNS label"),
    "host address bad": (lambda d: host(d, "w2").update(address="w2.example"), "hosts[w2].address", "not an IP"),
    "host on the network address": (lambda d: host(d, "w2").update(address="10.123.0.0"), "hosts[w2].address",
                                    "network or broadcast address"),
    "host on the broadcast address": (lambda d: host(d, "w2").update(address="10.123.0.255"), "hosts[w2].address",
                                      "network or broadcast address"),
    "host of the other family": (lambda d: host(d, "w2").update(address="fd00::32"), "hosts[w2].address",
                                 "is IPv6, network.node_cidr 10.123.0.0/24 is IPv4"),
    "host outside node cidr": (lambda d: host(d, "w2").update(address="10.124.0.32"), "hosts[w2].address", "outside network.node_cidr"),
    "unknown role": (set_roles("w2", ["wroker"]), "hosts[w2].roles", "did you mean 'worker'"),
    "no roles": (set_roles("w2", []), "hosts[w2].roles", "non-empty list"),
    "control plane also worker": (set_roles("cp1", ["control_plane", "etcd", "worker"]), "hosts[cp1].roles", "control_planes_schedulable"),
    "no control plane": (every_role_removed("control_plane"), "hosts", "no host has the control_plane role"),
    "empty etcd group": (every_role_removed("etcd"), "hosts", "no host has the etcd role"),
    "even etcd group": (set_roles("cp3", ["control_plane"]), "hosts", "odd number"),
    "stacked etcd off the control planes": (
        lambda d: (put("etcd.topology", "stacked")(d), set_roles("w1", ["worker", "etcd"])(d)),
        "hosts", "stacked etcd"),
    "keepalived mode without lb hosts": (remove_hosts("lb1", "lb2"), "api.mode", "needs hosts with the lb role"),
    "haproxy on a control plane on the API port": (set_roles("cp1", ["control_plane", "etcd", "lb"]), "api.port", "cannot listen on 6443"),
    "lb hosts with kube-vip": (put("api.mode", "kube_vip"), "api.mode", "only used by keepalived_haproxy"),
    # the API endpoint
    "vip missing": (drop("api.vip"), "api.vip", "is required"),
    "vip outside the subnet": (put("api.vip", "10.124.0.10"), "api.vip", "outside network.node_cidr"),
    "vip is a host address": (put("api.vip", "10.123.0.21"), "api.vip", "address of host cp1"),
    "vip is the network address": (put("api.vip", "10.123.0.0"), "api.vip", "network or broadcast"),
    "external without address": (lambda d: (put("api.mode", "external")(d), drop("api.vip")(d), remove_hosts("lb1", "lb2")(d)),
                                 "api.external_address", "is required"),
    "kube-vip on another port": (lambda d: (put("api.mode", "kube_vip")(d), remove_hosts("lb1", "lb2")(d),
                                            put("api.port", 8443)(d)), "api.port", "use 6443"),
    "bad router id": (put("api.virtual_router_id", 300), "api.virtual_router_id", "between 1 and 255"),
    "bad interface": (put("api.interface", "eth 0"), "api.interface", "not an interface name"),
    "none mode with vip access": (lambda d: (api_mode_none(d), put("workers.api_access", "vip")(d)),
                                  "workers.api_access", "no VIP"),
    "none mode on another port": (lambda d: (api_mode_none(d), put("api.port", 8443)(d)), "api.port", "use 6443"),
    "vip on the broadcast address": (put("api.vip", "10.123.0.255"), "api.vip", "network or broadcast"),
    "external address neither ip nor name": (
        lambda d: (put("api.mode", "external")(d), drop("api.vip")(d), remove_hosts("lb1", "lb2")(d),
                   put("api.external_address", "lb..example.internal")(d)),
        "api.external_address", "neither an IP address nor a DNS name"),
    "external address a mistyped ip": (
        lambda d: (put("api.mode", "external")(d), drop("api.vip")(d), remove_hosts("lb1", "lb2")(d),
                   put("api.external_address", "10.123.0.256")(d)),
        "api.external_address", "neither an IP address nor a DNS name"),
    "external address without external mode": (put("api.external_address", "10.123.0.5"), "api.external_address",
                                                "is not used with api.mode keepalived_haproxy"),
    "extra sans not a list": (put("api.extra_sans", "api.example.internal"), "api.extra_sans", "must be a list"),
    "extra san not a string": (put("api.extra_sans", ["api.example.internal", 6443]), "api.extra_sans[1]",
                               "must be a string"),
    "extra san neither ip nor name": (put("api.extra_sans", ["kube api"]), "api.extra_sans[0]",
                                      "neither an IP address nor a DNS name"),
    "endpoint name localhost": (put("api.endpoint_name", "localhost"), "api.endpoint_name", "the host itself"),
    "endpoint name under localhost": (put("api.endpoint_name", "api.localhost"), "api.endpoint_name", "the host itself"),
    "endpoint name a host's name": (put("api.endpoint_name", "cp2"), "api.endpoint_name", "is the name of host cp2"),
    "endpoint name an ip address": (put("api.endpoint_name", "10.123.0.10"), "api.endpoint_name", "not a DNS name"),
    # ports: one the file sets must not be taken on the same host
    "api port is sshd's": (put("api.port", 22), "api.port", "haproxy cannot listen on 22 on lb1, lb2: sshd"),
    "api port is one host's ssh port": (lambda d: (put("api.port", 2222)(d), host_ssh("w1", port=2222)(d)), "api.port",
                                        "the API proxy (haproxy) cannot listen on 2222 on w1: sshd"),
    "api port is the kubelet's": (put("api.port", 10250), "api.port", "the kubelet uses it"),
    "api port is kube-proxy's": (put("api.port", 10256), "api.port", "kube-proxy's health check uses it"),
    "api port is haproxy's stats": (put("api.port", 8404), "api.port", "haproxy's stats page uses it"),
    "api port is the scheduler's": (lambda d: (set_roles("cp1", ["control_plane", "etcd", "lb"])(d), put("api.port", 10259)(d)),
                                    "api.port", "cannot listen on 10259 on cp1: the scheduler"),
    "api port is etcd's": (lambda d: (set_roles("cp1", ["control_plane", "etcd", "lb"])(d), put("api.port", 2379)(d)),
                           "api.port", "cannot listen on 2379 on cp1: etcd (clients)"),
    "ssh port is the kubelet's": (put("ssh.port", 10250), "ssh.port", "sshd cannot listen on 10250"),
    "a host's ssh port is etcd's": (host_ssh("cp1", port=2380), "hosts[cp1].ssh.port",
                                    "sshd cannot listen on 2380 on cp1: etcd (peers)"),
    # networks
    "pod and service overlap": (put("network.service_cidr", "10.244.0.0/16"), "network.service_cidr", "overlaps network.pod_cidr"),
    "node and pod overlap": (put("network.pod_cidr", "10.123.0.0/16"), "network.pod_cidr", "overlaps network.node_cidr"),
    "service cidr too large": (put("network.service_cidr", "10.0.0.0/8"), "network.service_cidr", "/12 at most"),
    "pod cidr too small": (put("network.pod_cidr", "10.244.0.0/26"), "network.pod_cidr", "smaller than one node"),
    "ipv6 pod network": (put("network.pod_cidr", "fd00:10:244::/56"), "network.pod_cidr", "is IPv6"),
    "ipv6 service network": (put("network.service_cidr", "fd00:10:96::/112"), "network.service_cidr", "is IPv6"),
    "ipv6 node network": (put("network.node_cidr", "fd00:123::/64"), "network.node_cidr", "IPv4 clusters only"),
    "bad cluster domain": (put("network.cluster_domain", "Cluster_Local"), "network.cluster_domain", "not a DNS name"),
    # versions
    "unsupported kubernetes": (put("kubernetes.version", "1.29.4"), "kubernetes.version", "not supported"),
    "unsupported etcd": (put("etcd.version", "3.4.23"), "etcd.version", "not supported"),
    "containerd too old for kubernetes": (put("containerd.version", "1.7.20"), "containerd.version", "not supported by Kubernetes 1.35"),
    "containerd 1.x with 1.36": (lambda d: (put("kubernetes.version", "1.36.4")(d), put("containerd.version", "1.7.30")(d)),
                                 "containerd.version", "not supported by Kubernetes 1.36"),
    "unsupported calico": (put("calico.version", "3.26.1"), "calico.version", "not supported"),
    "version without checksum": (put("kubernetes.version", "1.35.2"), "kubernetes.version", "no sha256 is known for kubeadm 1.35.2"),
    # users, ssh, other settings
    "missing ssh user": (drop("ssh.user"), "ssh.user", "is required"),
    "missing ssh key": (drop("ssh.key"), "ssh.key", "is required"),
    "ssh key file absent": (put("ssh.key", "/nonexistent/id"), "ssh.key", "does not exist"),
    "bad ssh port": (put("ssh.port", 70000), "ssh.port", "between 1 and 65535"),
    "bad host ssh port": (lambda d: host(d, "w1").update(ssh={"port": "x"}), "hosts[w1].ssh.port", "whole number"),
    "bad kubectl user": (put("kubectl_user.name", "Citec Admin"), "kubectl_user.name", "Linux user name"),
    "kubectl user root": (put("kubectl_user.name", "root"), "kubectl_user.name", "is a system account"),
    "kubectl user nobody": (put("kubectl_user.name", "nobody"), "kubectl_user.name", "is a system account"),
    "kubectl user etcd": (put("kubectl_user.name", "etcd"), "kubectl_user.name", "is a system account"),
    "kubectl user systemd-": (put("kubectl_user.name", "systemd-timesync"), "kubectl_user.name", "is a system account"),
    "kubectl user with a leading _": (put("kubectl_user.name", "_chrony"), "kubectl_user.name", "is a system account"),
    "kubectl user in system:masters": (put("kubectl_user.group", "system:masters"), "kubectl_user.group", "cannot be revoked"),
    "bad mtu": (put("calico.mtu", 100), "calico.mtu", "between 1000 and 9000"),
    "checksums file absent": (put("offline.checksums_file", "/nonexistent/sums.yaml"), "offline.checksums_file", "does not exist"),
    "bad registry mirrors": (put("containerd.registry_mirrors", {"docker.io": "mirror"}), "containerd.registry_mirrors.docker.io", "http(s) URLs"),
    "bad node label": (put("kubernetes.node_labels", {"bad key!": "x"}), "kubernetes.node_labels.bad key!", "label key"),
    # removing nodes: each entry names a node by name and address, both of a host no longer in hosts
    "remove not a list": (put("remove", {"name": "w2"}), "remove", "must be a list"),
    "empty remove": (put("remove", None), "remove", "is empty"),
    "remove entry not a mapping": (put("remove", ["w2"]), "remove[0]", "must be a mapping"),
    "remove entry without a name": (removing({"address": "10.123.0.32"}), "remove[0].name", "is required"),
    "remove entry without an address": (removing({"name": "w2"}), "remove[w2].address", "is required"),
    "remove entry with a bad address": (removing({"name": "w2", "address": "10.123.0.320"}), "remove[w2].address",
                                        "is not an IP address"),
    "remove entry with an unknown key": (removing({"name": "w2", "address": "10.123.0.32", "roles": ["worker"]}),
                                         "remove[w2].roles", "unknown key"),
    "remove entry still in hosts": (put("remove", [{"name": "w2", "address": "10.123.0.32"}]), "remove[w2].name",
                                    "is still in hosts"),
    "remove entry with a kept host's address": (removing({"name": "w3", "address": "10.123.0.31"}),
                                                "remove[w3].address", "address of host w1, which the cluster keeps"),
    "remove entry with a bad name": (removing({"name": "W_2", "address": "10.123.0.32"}), "remove[W_2].name",
                                     "DNS label"),
    "remove entry outside the node network": (removing({"name": "w2", "address": "10.124.0.32"}),
                                              "remove[w2].address", "outside network.node_cidr"),
    "remove entry on the vip": (removing({"name": "w2", "address": "10.123.0.10"}), "remove[w2].address",
                                "the API's VIP"),
    "remove entry twice": (removing({"name": "w2", "address": "10.123.0.32"}, {"name": "w2", "address": "10.123.0.33"}),
                           "remove[w2].name", "listed twice"),
    "two remove entries on one address": (removing({"name": "w2", "address": "10.123.0.32"},
                                                   {"name": "w3", "address": "10.123.0.32"}),
                                          "remove[w3].address", "listed twice"),
    "removing an etcd member leaves an even number": (removing({"name": "cp1", "address": "10.123.0.21"}), "hosts",
                                                      "add its replacement to hosts in the same run"),
    # certificates
    "renewal window of zero days": (put("certificates.renew_before", 0), "certificates.renew_before", "at least 1"),
    "certificate lifetime of zero": (put("certificates.validity_hours", 0), "certificates.validity_hours",
                                     "between 1 and 87600"),
    "certificate outliving its CA": (put("certificates.validity_hours", 100000), "certificates.validity_hours",
                                     "must not outlive the CA"),
    # a key written without a value (`key:` or `key: ""`) is refused, never quietly the default
    "empty number": (put("api.port", None), "api.port", "is empty: remove the key to use the default 6443"),
    "empty string": (put("kubernetes.image_registry", ""), "kubernetes.image_registry",
                     "is empty: remove the key to use the default registry.k8s.io"),
    "empty switch": (put("prep.firewall", None), "prep.firewall", "is empty: remove the key to use the default true"),
    "empty map": (put("kubernetes.node_labels", None), "kubernetes.node_labels", "remove the key to use the default {}"),
    "empty list": (put("prep.packages", None), "prep.packages", "remove the key to use the default []"),
    "empty required knob": (put("name", ""), "name", "is required"),
    "empty section": (put("api", None), "api", "is empty: remove it"),
    "empty host ssh": (lambda d: host(d, "w1").update(ssh=None), "hosts[w1].ssh", "is empty"),
    "empty host ssh user": (lambda d: host(d, "w1").update(ssh={"user": ""}), "hosts[w1].ssh.user",
                            "remove the key to use ssh.user"),
    "empty host labels": (lambda d: host(d, "w1").update(labels=None), "hosts[w1].labels", "is empty"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validation_case(case, base, tmp_path):
    change, field, message = CASES[case]
    data = copy.deepcopy(base)
    change(data)
    problems = problems_for(data, tmp_path)
    assert any(p.field == field and message in p.message for p in problems), \
        f"expected {field}: ...{message}... in {[str(p) for p in problems]}"


def text_edit(old, new):
    """A change to the cluster file's text, for mistakes the data cannot hold (a key given twice)."""
    def change(text):
        assert old in text, old
        return text.replace(old, new, 1)
    return change


# each adds a second value for a key that already has one; YAML alone would keep the last silently
DUPLICATE_KEY_CASES = {
    "two api blocks": (text_edit("api:\n  interface:", "api:\n  port: 8443\napi:\n  interface:"), "api"),
    "a key twice in a section": (text_edit("  mode: keepalived_haproxy\n", "  mode: keepalived_haproxy\n  mode: kube_vip\n"),
                                 "api.mode"),
    "a key twice in a host entry": (text_edit("- address: 10.123.0.31\n", "- address: 10.123.0.31\n  address: 10.123.0.39\n"),
                                    "hosts[w1].address"),
    "a label twice": (text_edit("kubernetes:\n", "kubernetes:\n  node_labels: {zone: a, zone: b}\n"),
                      "kubernetes.node_labels.zone"),
}


@pytest.mark.parametrize("case", sorted(DUPLICATE_KEY_CASES))
def test_a_key_given_twice_is_refused(case, base, tmp_path):
    change, field = DUPLICATE_KEY_CASES[case]
    path = tmp_path / "case.yaml"
    path.write_text(change(yaml.safe_dump(base)))
    _, problems = validate(path)
    assert any(p.field == field and p.message.startswith("is given twice") for p in problems), \
        f"expected {field}: is given twice... in {[str(p) for p in problems]}"


def test_a_key_given_twice_names_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: twice\napi:\n  port: 8443\nhosts: []\napi:\n  vip: 10.0.0.10\n")
    _, problems = validate(path)
    assert "api: is given twice (lines 2 and 5): YAML would keep only the last one; remove the other" in \
        [str(p) for p in problems]


# layouts that work but are not highly available, or are probably not what was meant
WARNING_CASES = {
    "one control plane": (remove_hosts("cp2", "cp3"), "hosts", "one control plane (cp1)"),
    "a single external etcd member": (lambda d: (set_roles("cp2", ["control_plane"])(d), set_roles("cp3", ["control_plane"])(d)),
                                      "hosts", "a single etcd member (cp1)"),
    "a single stacked etcd member": (lambda d: (put("etcd.topology", "stacked")(d), remove_hosts("cp2", "cp3")(d)),
                                     "hosts", "a single etcd member (cp1)"),
    "one lb host": (remove_hosts("lb2"), "hosts", "one lb host (lb1)"),
    "no load balancer in front of the control planes": (api_mode_none, "api.mode", "through cp1 only"),
    "nowhere to run workloads": (remove_hosts("w1", "w2"), "hosts", "workloads have nowhere to run"),
    "kubectl user is the ssh user": (put("kubectl_user.name", "kube"), "kubectl_user.name",
                                     "also the SSH login user of cp1, cp2, cp3"),
    "kubectl user is one host's ssh user": (lambda d: (host_ssh("cp2", user="ops")(d), put("kubectl_user.name", "ops")(d)),
                                            "kubectl_user.name", "also the SSH login user of cp2,"),
    "a renewal window as long as the lifetime": (lambda d: (put("certificates.validity_hours", 48)(d),
                                                            put("certificates.renew_before", 2)(d)),
                                                 "certificates.renew_before", "every run renews every one of them"),
}


def test_a_removal_entry_is_read_with_the_cluster_ssh_settings(base, tmp_path):
    data = copy.deepcopy(base)
    removing({"name": "w2", "address": "10.123.0.32", "ssh": {"port": 2222}})(data)
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(data))
    cluster, problems = validate(path)
    assert problems == []
    (entry,) = cluster.removals
    assert (entry.name, entry.address, entry.roles, entry.ssh_port, entry.ssh_user) == \
        ("w2", "10.123.0.32", (), 2222, cluster.ssh.user)
    assert cluster.removal("w2") == entry and cluster.host("w2") is None


@pytest.mark.parametrize("case", sorted(WARNING_CASES))
def test_warning_case(case, base, tmp_path):
    change, field, message = WARNING_CASES[case]
    data = copy.deepcopy(base)
    change(data)
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(data))
    cluster, problems = validate(path)
    assert problems == [], "a warning is not fatal"
    warnings = warnings_for(cluster)
    assert any(w.field == field and message in w.message for w in warnings), \
        f"expected {field}: ...{message}... in {[str(w) for w in warnings]}"


# topology-a's kubectl user, citec, is also its SSH user (a warning, so the example still deploys)
SHIPPED_WARNINGS = {"topology-a": ["kubectl_user.name"]}


@pytest.mark.parametrize("name", sorted(CLUSTER_FILES))
def test_shipped_cluster_files_warn_only_where_meant(name, tmp_path):
    cluster, problems = validate(local_copy(CLUSTER_FILES[name], tmp_path))
    assert problems == []
    assert [w.field for w in warnings_for(cluster)] == SHIPPED_WARNINGS.get(name, [])


def test_the_readme_lists_the_ports_and_accounts_refused():
    readme = (PROJECT / "README.md").read_text()
    ports = readme.split("- ports:")[1].split("\n- ")[0]
    assert {int(port) for port in re.findall(r"\b\d{3,5}\b", ports)} == {
        *validation.KUBELET_HOST_PORTS, *validation.CONTROL_PLANE_PORTS, *validation.ETCD_PORTS, *validation.LB_PORTS}
    accounts = readme.split("or a system account:")[1].split("and any name")[0]
    assert set(re.findall(r"`([^`]+)`", accounts)) == validation.SYSTEM_ACCOUNTS


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_every_shipped_cluster_file_passes(any_cluster_file):
    _, problems = validate(any_cluster_file)
    assert problems == []


def test_an_empty_knob_without_a_default_is_the_same_as_leaving_it_out(base, tmp_path):
    data = copy.deepcopy(base)
    put("offline.apt_proxy", None)(data)
    put("ssh.known_hosts_file", "")(data)
    assert problems_for(data, tmp_path) == []


def test_all_problems_are_reported_together(base, tmp_path):
    data = copy.deepcopy(base)
    put("api.vip", "10.123.0.21")(data)
    put("network.service_cidr", "10.244.0.0/16")(data)
    set_roles("cp3", ["control_plane"])(data)
    fields = {p.field for p in problems_for(data, tmp_path)}
    assert {"api.vip", "network.service_cidr", "hosts"} <= fields


def test_unreadable_and_invalid_files(tmp_path):
    assert "cannot read" in validate(tmp_path / "missing.yaml")[1][0].message
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert "not valid YAML" in validate(bad)[1][0].message
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert "mapping" in validate(listing)[1][0].message


def load_inventory(cluster_file):
    """Reads inventory.py and group_data/ the way pyinfra's command line does, in a fresh
    process that connects nowhere. Returns (exit code, stderr)."""
    code = ("from pyinfra.api import State\n"
            "from pyinfra.context import ctx_state\n"
            "from pyinfra_cli.inventory import make_inventory\n"
            "with ctx_state.use(State()):\n"
            "    make_inventory('inventory.py', cwd='.')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True,
                            env={"KUBEHA_CLUSTER": str(cluster_file), "PATH": "/usr/bin:/bin", "PYTHONPATH": "."})
    return result.returncode, result.stderr


def test_inventory_refuses_a_bad_file_before_touching_any_host(base, tmp_path):
    data = copy.deepcopy(base)
    put("api.vip", "10.123.0.21")(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    code, stderr = load_inventory(path)
    assert code == 2
    assert "api.vip: 10.123.0.21 is the address of host cp1" in stderr


def test_inventory_prints_warnings_once_and_goes_on(base, tmp_path):
    data = copy.deepcopy(base)
    remove_hosts("lb2")(data)
    path = tmp_path / "one-lb.yaml"
    path.write_text(yaml.safe_dump(data))
    code, stderr = load_inventory(path)
    assert code == 0, stderr
    assert stderr.count("1 warning(s) on the cluster definition, not fatal:") == 1, stderr
    assert stderr.count("  - hosts: one lb host (lb1)") == 1, stderr
