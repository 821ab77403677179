"""The snapshot script, its service and its timer, rendered for the cluster files of both etcd
topologies and checked by the programs that read them: sh -n, systemd-analyze verify and
calendar. What the script does is proven against real etcd in tests/artifacts/test_backup_real.py."""

import re
import shutil
import subprocess

import pytest
from support import cluster_copy, shipped

from cluster import backup, etcd, paths

SHELL = shutil.which("dash") or shutil.which("sh")


@pytest.mark.parametrize("name", ["lab-ha", "topology-a"])
def test_every_member_gets_a_script_for_its_own_member_and_certificates(name, tmp_path):
    cluster, _ = cluster_copy(name, tmp_path, **{"backup.keep": 3, "backup.min_free_mb": 200})
    layout = etcd.layout(cluster)
    for member in etcd.members(cluster):
        script = backup.snapshot_script(cluster, member, layout, paths.BIN_DIR)
        assert script.startswith("#!/bin/sh\n")
        check = subprocess.run([SHELL, "-n", "-c", script], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        assert f"--endpoints={member.client_url} --cacert={layout.cacert} --cert={layout.cert} --key={layout.key}" \
            in script
        assert f"DIR={backup.SNAPSHOT_DIR}\n" in script and "KEEP=3\n" in script
        assert f"MIN_FREE_KB={200 * 1024}\n" in script
        assert f"name={backup.name_prefix(cluster.name)}$(date" in script and f"-{member.name}\n" in script
        assert "umask 077" in script
        # a name the script makes is one the deploy reads back
        assert backup.parse_name(f"{backup.name_prefix(cluster.name)}20261122T060000Z-{member.name}")


def test_stacked_members_use_kubeadms_etcd_client_certificate():
    cluster = shipped("topology-a")
    script = backup.snapshot_script(cluster, etcd.members(cluster)[0], etcd.layout(cluster), paths.BIN_DIR)
    assert "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in script


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("schedule", ["*-*-* 00/6:00:00", "hourly", "Mon..Fri 02:30"])
def test_systemd_accepts_the_service_and_the_timer(schedule, tmp_path):
    cluster, _ = cluster_copy("lab-ha", tmp_path, **{"backup.schedule": schedule})
    member = etcd.members(cluster)[1]
    script = tmp_path / "kubeha-etcd-backup"  # verify wants the program to exist
    script.write_text(backup.snapshot_script(cluster, member, etcd.layout(cluster), paths.BIN_DIR))
    script.chmod(0o700)
    for unit, content in backup.snapshot_units(cluster, member).items():
        (tmp_path / unit).write_text(content.replace(backup.SCRIPT, str(script)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / backup.TIMER), str(tmp_path / backup.SERVICE)],
                            capture_output=True, text=True)
    # verify exits 0 on settings it ignores, so any message counts as a failure
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    timer = (tmp_path / backup.TIMER).read_text()
    assert f"OnCalendar={schedule}\n" in timer and "AccuracySec=1s" in timer
    assert not re.search(r"^Persistent=", timer, re.M)  # a member back from a stop takes no extra snapshot
    calendar = subprocess.run(["systemd-analyze", "calendar", schedule], capture_output=True, text=True)
    assert calendar.returncode == 0 and "Next elapse:" in calendar.stdout, calendar.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_default_schedule_fires_four_times_a_day():
    cluster = shipped("lab-ha")
    calendar = subprocess.run(["systemd-analyze", "calendar", "--iterations=5", cluster.backup.schedule],
                              capture_output=True, text=True)
    times = re.findall(r"\d\d:\d\d:\d\d", calendar.stdout.split("Next elapse:", 1)[1])
    assert sorted(set(times)) == ["00:00:00", "06:00:00", "12:00:00", "18:00:00"], calendar.stdout
