"""Resetting a host: everything kubeha, kubeadm, kube-proxy and Calico put on it taken away, and
only that. Used by the removal of a node (tasks/remove_nodes.py) and by the reset of a whole
cluster (tasks/reset.py).

- the kubelet stopped, then every pod but the control plane's (their networks are torn down
  through the API), then the control plane's, and the kubelet's mounts unmounted;
- data moved aside, never deleted: /var/lib/kubelet, stacked etcd's /var/lib/etcd and external
  etcd's /var/lib/kubeha-etcd become <dir>.kubeha-reset-<UTC time>;
- `kubeadm reset -f`, without its etcd phase (the membership is the removal's business, and that
  phase would delete the etcd data dir);
- kubeha's services stopped and disabled (kubelet, the API proxy, etcd, containerd, the firewall
  unit, whose stop deletes table inet kubeha; haproxy and keepalived where their configuration is
  kubeha's);
- kube-proxy's and Calico's iptables rules and chains by name (KUBE-*, cali-*), per table and
  backend, in one iptables-restore transaction each: no table is flushed, no policy touched, so
  the SSH connection stays; the nftables tables kube-proxy, calico and kubeha; the KUBE-* and
  cali* ipsets; vxlan.calico, the cali* veths, kube-ipvs0 and Calico's routes; tunl0 is flushed and
  set down (the ipip module owns it);
- the files kubeha wrote: units and drop-ins, binaries and links, /etc/kubeha, /opt/kubeha, the
  download cache, /etc/kubernetes, /etc/etcd, /etc/cni/net.d, /var/lib/calico, containerd's and
  crictl's configuration, the sysctl.d, modules-load.d and apt proxy files, the kubectl user's
  kubeconfig, the files marked "# Managed by kubeha" at paths packages own (haproxy, keepalived,
  registry mirrors), and the /etc/hosts block.

Left on the host: the OS packages, the time sync service, the hostname, swap off, the etcd and
kubectl users, /opt/cni/bin, containerd's image store (/var/lib/containerd: a deploy reuses it).

Each step reads facts.host.KubehaFootprint when it runs, announces every deletion (so `--dry`
lists them per host), and does nothing on a host that holds nothing of it: a second reset
changes nothing.
"""

import datetime
import os
import shlex
import shutil

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, operation
from pyinfra.operations import files

from cluster import api_proxy, firewall, loadbalancer, paths
from cluster.certificates import user_kubeconfig
from facts.host import KubehaFootprint
from operations.failure import fail

STAMP = "$(date -u +%Y%m%dT%H%M%SZ)"
DATA_DIRS = (paths.KUBELET_DIR, paths.STACKED_ETCD_DATA_DIR, paths.ETCD_DATA_DIR)
SERVICES = ("kubelet", api_proxy.SERVICE, "etcd", "containerd", "kubeha-firewall")
LB_SERVICES = {"haproxy": loadbalancer.HAPROXY_CONFIG, "keepalived": loadbalancer.KEEPALIVED_CONFIG}
UNIT_FILES = (
    "/etc/systemd/system/kubelet.service", "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "/etc/systemd/system/containerd.service", "/etc/systemd/system/etcd.service", api_proxy.UNIT, firewall.UNIT,
)
BINARIES = ("kubeadm", "kubelet", "kubectl", "containerd", "containerd-shim-runc-v2", "ctr", "crictl", "etcd",
            "etcdctl", "etcdutl")
REMOVED = UNIT_FILES + tuple(f"{paths.BIN_DIR}/{name}" for name in BINARIES) + (
    paths.RUNC, paths.KUBEADM_DIR, paths.RELEASES_DIR, os.path.dirname(paths.DOWNLOAD_DIR), paths.KUBERNETES_DIR,
    paths.ETCD_CONFIG_DIR, "/etc/cni/net.d", "/var/lib/calico", "/etc/containerd/config.toml", "/etc/crictl.yaml",
    "/etc/sysctl.d/99-kubeha.conf", "/etc/sysctl.d/90-kubeha-loadbalancer.conf", "/etc/modules-load.d/kubeha.conf",
    "/etc/apt/apt.conf.d/01kubeha-proxy",
)
MARKED = (f"{paths.CONTAINERD_CERTS_DIR}/*/hosts.toml", loadbalancer.HAPROXY_CONFIG, loadbalancer.KEEPALIVED_CONFIG,
          loadbalancer.CHECK_SCRIPT)
HOSTS_MARKER = "# {mark} kubeha cluster hosts"
KUBEADM = f"{paths.BIN_DIR}/kubeadm"


def footprint_args(cluster):
    """The arguments of KubehaFootprint for a host of this cluster."""
    return {"paths": [*DATA_DIRS, *REMOVED, user_kubeconfig(cluster)], "units": [*SERVICES, *LB_SERVICES],
            "marked": list(MARKED), "mounts_under": paths.KUBELET_DIR, "hosts_marker": HOSTS_MARKER.format(mark="BEGIN"),
            "containerd_socket": paths.CONTAINERD_SOCKET}


# What each step does, as (what is removed, command) pairs, from a footprint.

# the static pods of a control plane: their containers share the host's network
STATIC_PODS = "etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kube-vip"


def stop_workloads(found):
    """The kubelet, then every container and pod but the control plane's: removing a pod tears
    its network down through Calico, which needs the API, so the apiservers stay until every host
    has done this (a failure is reported, not fatal: kubeadm reset tries again)."""
    steps = []
    if found["units"].get("kubelet", {}).get("active"):
        steps.append(("stop the kubelet", "systemctl stop kubelet"))
    if found["pods"]:
        # the IDs crictl prints one a line, made " id1 id2 " to find one in
        steps.append(("stop every container but the control plane's",
                      f"static=\" $(crictl ps -q --name '^({STATIC_PODS})$' | tr '\\n' ' ') \"; "
                      'for id in $(crictl ps -q); do case "$static" in *" $id "*) ;; '
                      '*) crictl stop --timeout 10 "$id" >/dev/null || true;; esac; done'))
        steps.append(("remove every pod but the control plane's",
                      f"static=\" $(crictl pods -q --namespace kube-system --name '^({STATIC_PODS})-' "
                      "| tr '\\n' ' ') \"; "
                      'for id in $(crictl pods -q); do case "$static" in *" $id "*) ;; *) '
                      'crictl rmp --force "$id" >/dev/null 2>&1 || echo "kubeha: pod $id was not removed" >&2;; esac; '
                      "done"))
    return steps


def stop_control_plane(found):
    """The pods left (the control plane's: host network, no teardown needed), then the kubelet's
    mounts, the deepest first."""
    steps = []
    if found["pods"]:
        steps.append((f"remove the {found['pods']} pods left", "crictl rmp --all --force >/dev/null 2>&1 || "
                      "echo 'kubeha: some pods were not removed' >&2"))
    for mount in sorted(found["mounts"], reverse=True):
        quoted = shlex.quote(mount)
        steps.append((f"unmount {mount}", f"umount {quoted} || umount -l {quoted}"))
    return steps


def move_data_aside(found):
    steps = []
    for directory in DATA_DIRS:
        if directory not in found["paths"]:
            continue
        if directory == paths.ETCD_DATA_DIR and found["units"].get("etcd", {}).get("active"):
            steps.append(("stop etcd", "systemctl stop etcd"))
        aside = f"{directory}.kubeha-reset-{STAMP}"
        steps.append((f"move {directory} aside to {directory}.kubeha-reset-<time> (an empty one is removed)",
                      f'if [ -n "$(ls -A {directory})" ]; then mv {directory} "{aside}"; else rmdir {directory}; fi'))
    return steps


def kubeadm_reset(found):
    if KUBEADM in found["paths"] and paths.KUBERNETES_DIR in found["paths"]:
        return [("kubeadm reset (its etcd phase skipped)", f"{KUBEADM} reset -f --skip-phases=remove-etcd-member")]
    return []


def stop_services(found):
    wanted = list(SERVICES) + [name for name, config in LB_SERVICES.items() if config in found["marked"]]
    return [(f"stop and disable {name}", f"systemctl disable --now {name}")
            for name in wanted
            if found["units"].get(name, {}).get("active") or found["units"].get(name, {}).get("enabled")]


RULE_DELETIONS = (
    # iptables-save of one table -> iptables-restore --noflush input that deletes, in one
    # transaction, the rules of other chains that jump to or are commented by kube-proxy's and
    # Calico's chains, then flushes and deletes those chains
    "awk -v table=\"$table\" 'BEGIN {print \"*\" table} "
    "/^:(KUBE-|cali-)/ {chains[++n] = substr($1, 2); next} "
    "/^-A / && $2 !~ /^(KUBE-|cali-)/ && ($0 ~ / -[jg] (KUBE-|cali-)/ || $0 ~ /--comment \"?cali:/) "
    "{sub(/^-A /, \"-D \"); print} "
    "END {for (i = 1; i <= n; i++) print \"-F \" chains[i]; for (i = 1; i <= n; i++) print \"-X \" chains[i]; "
    "print \"COMMIT\"}'"
)


def network(found):
    steps = []
    for tool, tables in sorted(found["chains"].items()):
        for table, chains in sorted(tables.items()):
            steps.append((f"{tool} {table}: the rules of {' '.join(chains)}",
                          f"table={table}; {tool}-save -t {table} | {RULE_DELETIONS} | {tool}-restore --noflush"))
    for table in found["nft_tables"]:
        steps.append((f"nftables table {table}", f"nft delete table {table}"))
    for ipset in found["ipsets"]:
        steps.append((f"ipset {ipset}", f"ipset destroy {shlex.quote(ipset)}"))
    for route in found["routes"]:
        steps.append((f"route {route}", f"ip route del {route}"))
    for link in found["links"]:
        steps.append((f"interface {link}", f"ip link delete {shlex.quote(link)}"))
    if found["tunl0"]:
        steps.append((f"tunl0's addresses {' '.join(found['tunl0'])}",
                      "ip addr flush dev tunl0 && ip link set tunl0 down"))
    return steps


def remove_files(found):
    present = [path for path in found["paths"] if path not in DATA_DIRS]
    steps = [(f"remove {path}", f"rm -rf {shlex.quote(path)}") for path in present]
    steps += [(f"remove {path} (kubeha's)", f"rm -f {shlex.quote(path)}") for path in found["marked"]]
    if "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf" in present:
        steps.append(("remove kubelet.service.d if empty",
                      "rmdir --ignore-fail-on-non-empty /etc/systemd/system/kubelet.service.d"))
    if any(path in UNIT_FILES for path in present):
        steps.append(("reload systemd", "systemctl daemon-reload"))
    return steps


def _run(act, plan_steps, footprint, nothing):
    """The steps `plan_steps` finds in this host's footprint: each announced (a --dry lists them),
    its command yielded. A host that is not to be reset (`act` false) only passes by."""
    if not act:
        host.noop("this host is not reset")
        return
    steps = plan_steps(host.get_fact(KubehaFootprint, **footprint))
    if not steps:
        host.noop(nothing)
        return
    # all announced first: pyinfra plans an operation only up to its first command
    for what, _ in steps:
        logger.info(f"{host.print_prefix}reset: {what}")
    for _, command in steps:
        yield command


@operation()
def kubelet_and_workloads(footprint, act=True):
    yield from _run(act, stop_workloads, footprint, "no kubelet or pod runs")


@operation()
def control_plane_pods(footprint, act=True):
    yield from _run(act, stop_control_plane, footprint, "no pod or kubelet volume is left")


@operation()
def data_aside(footprint, act=True):
    yield from _run(act, move_data_aside, footprint, "no kubelet or etcd data here")


@operation()
def reset_kubeadm(footprint, act=True):
    yield from _run(act, kubeadm_reset, footprint, "nothing of kubeadm's is left")


@operation()
def services_off(footprint, act=True):
    yield from _run(act, stop_services, footprint, "no kubeha service runs")


@operation()
def network_state(footprint, act=True):
    yield from _run(act, network, footprint,
                    "no rule, table, ipset, route or interface of kube-proxy's, Calico's or kubeha's")


@operation()
def kubeha_files(footprint, act=True):
    yield from _run(act, remove_files, footprint, "no file of kubeha's is left")


@operation()
def hosts_block(footprint, act=True):
    if not act:
        host.noop("this host is not reset")
        return
    if not host.get_fact(KubehaFootprint, **footprint)["hosts_block"]:
        host.noop("/etc/hosts has no kubeha block")
        return
    logger.info(f"{host.print_prefix}reset: remove the cluster's hosts from /etc/hosts")
    yield from files.block._inner(path="/etc/hosts", marker=HOSTS_MARKER, present=False)


def reset_host(cluster, act=True):
    """Every step above, in order, on every host of the run: those not to be reset (`act` false)
    only pass by. pyinfra orders operations only within each host's own sequence, so a step that
    other hosts' operations must follow (a node is deleted only once its machine is reset) is
    planned on every host. Call it once per stage, from one line: the operations then keep their
    own identities."""
    footprint = footprint_args(cluster)
    kubelet_and_workloads(name="Reset: stop the kubelet and the workloads", footprint=footprint, act=act)
    control_plane_pods(name="Reset: stop the control plane's pods, unmount the kubelet's volumes", footprint=footprint,
                       act=act)
    data_aside(name="Reset: move the kubelet's and etcd's data aside", footprint=footprint, act=act)
    reset_kubeadm(name="Reset: kubeadm reset", footprint=footprint, act=act)
    services_off(name="Reset: stop and disable kubeha's services", footprint=footprint, act=act)
    network_state(name="Reset: remove kube-proxy's, Calico's and kubeha's network state", footprint=footprint,
                  act=act)
    kubeha_files(name="Reset: remove the files kubeha wrote", footprint=footprint, act=act)
    hosts_block(name="Reset: remove the cluster's hosts from /etc/hosts", footprint=footprint, act=act)


@operation()
def confirmed(cluster_name, given):
    """Stop here, on every host, unless `given` is the cluster's name: a reset deletes a cluster."""
    if given == cluster_name:
        host.noop(f"the reset of {cluster_name} is confirmed")
        return
    if not state.is_executing:
        logger.warning(f"{host.print_prefix}not confirmed: a run (not --dry) stops here, before anything is reset")
    yield from fail(f"resetting {cluster_name} deletes the cluster on every host: confirm with "
                    f"--data reset_confirm={cluster_name} or KUBEHA_RESET_CONFIRM={cluster_name}")


def _move_aside(path, aside):
    shutil.move(path, aside)
    return True


@operation()
def local_state(state_dir, move):
    """The local state directory kept (the next deploy reuses its CAs and secrets), or, when
    `move`, moved aside beside it (never deleted)."""
    if not move:
        host.noop(f"the local state {state_dir} is kept: a deploy reuses its CAs and secrets")
        return
    if not os.path.isdir(state_dir):
        host.noop(f"no local state at {state_dir}")
        return
    aside = f"{state_dir}.reset-{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}"
    logger.info(f"{host.print_prefix}reset: move the local state {state_dir} aside to {aside}")
    if state.is_executing:
        yield FunctionCommand(_move_aside, (state_dir, aside), {})
    else:
        yield "true"  # what the run will do is said above; the plan shows the change
