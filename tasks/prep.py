"""Host preparation: name, name resolution, swap, kernel modules, sysctls, OS packages, time
sync and the cluster ports' firewall.

Runs on all hosts. Alone: `pyinfra inventory.py tasks/prep.py`.

- hostname = the node's name; an /etc/hosts block lists every cluster host and resolves
  api.endpoint_name (kubeadm's controlPlaneEndpoint) to this host's way to the API: the VIP,
  the external load balancer, or 127.0.0.1 where a localhost proxy serves it.
- The download cache the later stages fetch the pinned release files into.
- offline.apt_proxy: apt's proxy file (or dnf.conf's proxy line), written before any install.
- Packages per OS family (cluster/system.py: PACKAGES), the time sync package, prep.packages.
- Swap off now and after reboots. In a container, swap is the machine's: never turned off here.
- overlay and br_netfilter loaded and listed in /etc/modules-load.d/kubeha.conf.
- Only net.* sysctls (bridge netfilter, IPv4 forwarding), persisted in
  /etc/sysctl.d/99-kubeha.conf. kernel.* and vm.* are never written: the kubelet sets what it
  needs, and in a container they would change the whole machine.
- Time sync (prep.time_sync) enabled and running. In a container the clock is the machine's:
  chronyd runs with -x (keeps time, never sets the clock, needs no CAP_SYS_TIME) through a
  unit drop-in; systemd-timesyncd refuses to run in containers and is only enabled.
- prep.firewall: nftables table `inet kubeha`, loaded by kubeha-firewall.service, drops new
  connections to the cluster's ports unless they come from the node, pod or service networks
  or loopback. It has no drop policy, flushes no other table, leaves VRRP alone; turning the
  knob off stops the unit, which deletes the table.
"""

from pyinfra import host
from pyinfra.operations import apt, dnf, files, server, systemd

from cluster import firewall, paths, system
from cluster.context import being_removed, cluster, container, node, os_family
from cluster.render import render
from operations import stage
from operations.config import config_file
from operations.host import kernel_modules, swap_off

stage.begin(name="Stage: Prepare the hosts", title="Prepare the hosts")

SYSCTL_FILE = "/etc/sysctl.d/99-kubeha.conf"
APT_PROXY_FILE = "/etc/apt/apt.conf.d/01kubeha-proxy"

me = node()
# None: the host checks have failed this host, or it is a machine of `remove:`: nothing is planned
family = None if being_removed() else os_family()
in_container = container()
prep = cluster().prep

if family:
    server.hostname(name="Set the hostname to the node name", hostname=me.name)
    files.block(
        name="List the cluster's hosts and the API endpoint in /etc/hosts",
        path="/etc/hosts",
        content="\n".join(system.hosts_entries(cluster(), me)),
        marker="# {mark} kubeha cluster hosts",
    )
    files.directory(name="Create the download cache", path=paths.DOWNLOAD_DIR, mode="0755")

    # the package manager's proxy comes before any package
    if family == "debian":
        if cluster().offline.apt_proxy:
            config_file(name="Send apt through offline.apt_proxy", path=APT_PROXY_FILE,
                        content=render("apt-proxy.conf.j2", proxy=cluster().offline.apt_proxy))
        else:
            files.file(name="Send apt through offline.apt_proxy", path=APT_PROXY_FILE, present=False)
        apt.packages(name="Install the OS packages", packages=system.packages(cluster(), family),
                     update=True, cache_time=86400)
    else:
        if cluster().offline.apt_proxy:
            files.line(name="Send dnf through offline.apt_proxy", path="/etc/dnf/dnf.conf",
                       line=r"^proxy[[:space:]]*=.*", replace=f"proxy={cluster().offline.apt_proxy}")
        dnf.packages(name="Install the OS packages", packages=system.packages(cluster(), family))

    swap_off(name="Turn swap off, now and for good", in_container=in_container)

    config_file(name="Load overlay and br_netfilter at boot", path="/etc/modules-load.d/kubeha.conf",
                content=render("kubeha-modules.conf.j2", modules=system.MODULES))
    kernel_modules(name="Load overlay and br_netfilter", modules=list(system.MODULES))

    for key in host.loop(sorted(system.SYSCTLS)):
        if not key.startswith("net."):  # kernel.*/vm.* are the machine's in a container
            raise ValueError(f"prep writes only net.* sysctls, not {key}")
        server.sysctl(name=f"Set {key}", key=key, value=system.SYSCTLS[key], persist=True,
                      persist_file=SYSCTL_FILE)

    time_unit = system.TIME_SYNC[prep.time_sync][family][1]
    if in_container and prep.time_sync == "chrony":
        config_file(name="Let chronyd keep time without setting the container's clock",
                    path=f"/etc/systemd/system/{time_unit}.service.d/kubeha-container.conf",
                    content=render("chrony-container.conf.j2", node=me, container=in_container),
                    daemon_reload=True, service=time_unit)
    # systemd-timesyncd will not start in a container (ConditionVirtualization=!container)
    timesyncd_in_container = in_container and prep.time_sync == "systemd-timesyncd"
    systemd.service(name="Run the time sync service", service=time_unit,
                    running=None if timesyncd_in_container else True, enabled=True)

    if prep.firewall:
        # the unit first: the table's reload then finds it
        config_file(name="Write the firewall table's unit", path=firewall.UNIT, content=firewall.unit(),
                    daemon_reload=True, service="kubeha-firewall")
        config_file(name="Write the cluster ports' firewall table", path=firewall.RULES,
                    content=firewall.rules(cluster(), me), service="kubeha-firewall", action="reload")
        systemd.service(name="Load the firewall table", service="kubeha-firewall", running=True, enabled=True)
    else:
        systemd.service(name="Unload the firewall table", service="kubeha-firewall", running=False, enabled=False)
        files.file(name="Remove the firewall table", path=firewall.RULES, present=False)
        files.file(name="Remove the firewall table's unit", path=firewall.UNIT, present=False)
