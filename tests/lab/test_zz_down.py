"""`down` leaves nothing behind. Runs last among the lab tests (file name)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from lab import paths

pytestmark = pytest.mark.lab


LEASE = Path("/proc/sys/fs/lease-break-time")


def test_down_leaves_nothing_behind(lab):
    # What a privileged pod could do: mount a fresh procfs in a host and write a global
    # sysctl. (fs.lease-break-time: harmless, and not a kernel.* or vm.* one.) status
    # reports it, down puts it back.
    lease = LEASE.read_text().strip()
    h = lab.hosts[0]
    lab.sudo(h, f"unshare -m -p -f --mount-proc sh -c 'echo {int(lease) + 1} > /proc/sys/fs/lease-break-time'")
    try:
        s = lab.status()
        assert s["machine_sysctls_changed"] == ["fs.lease-break-time"]
        assert lab.cli("status", check=False).returncode == 1
    except BaseException:
        LEASE.write_text(lease)
        raise

    st = json.loads(paths.STATE_FILE.read_text())
    ip_forward_before = st["ip_forward_before"]
    cgroups = st["cgroups"]
    assert cgroups
    out = lab.down().stdout
    assert "fs.lease-break-time changed" in out
    assert LEASE.read_text().strip() == lease

    netns = os.listdir("/run/netns") if Path("/run/netns").is_dir() else []
    assert not [n for n in netns if n.startswith(paths.NETNS_PREFIX)]
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout)
    names = [l["ifname"] for l in links]
    assert paths.BRIDGE not in names
    assert not [n for n in names if n.startswith(paths.VETH_PREFIX)]
    for chain in (paths.FW_CHAIN_FORWARD, paths.FW_CHAIN_INPUT):
        assert subprocess.run(["iptables", "-S", chain], capture_output=True).returncode != 0
    for parent in ("INPUT", "FORWARD"):
        assert "KUBEHA" not in subprocess.run(["iptables", "-S", parent], capture_output=True, text=True).stdout
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "systemd-nspawn --directory=/var/lib/kubeha-lab" not in ps
    assert "lab.servers" not in ps and "/var/lib/kubeha-lab/run/registry.yml" not in ps
    for d in cgroups:
        assert not Path(d).exists(), d
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == ip_forward_before
    left = sorted(p.name for p in paths.STATE_DIR.iterdir()) if paths.STATE_DIR.exists() else []
    assert left in ([], ["ssh"])
    if left:
        assert sorted(p.name for p in paths.SSH_DIR.iterdir()) == ["id_ed25519", "id_ed25519.pub"]
    assert "/var/lib/kubeha-lab" not in Path("/proc/self/mountinfo").read_text()

    cp = lab.cli("status", check=False)
    assert cp.returncode == 3 and "no lab on this machine" in cp.stdout
    # down again: nothing to do, still fine
    assert lab.cli("down").returncode == 0
