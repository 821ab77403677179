"""The test harness's own helpers that the machine tiers lean on."""

from support import failed_hosts_lines

RUN = """--> Starting operation: tasks/control_plane.py | kubeadm join as a control plane, one at a time
    [k2] Error: kubeadm join failed: etcd member k2 did not become healthy
    [k3] Success
--> Starting operation: tasks/calico.py | Install Calico
    [k1] Error: not this one
    [k2]  No changes
    [k2]  Skipped
"""


def test_a_failed_hosts_error_is_kept_however_much_the_run_printed_after_it():
    text = failed_hosts_lines(RUN + "    [k3] Success\n" * 10_000, ["k2"])
    assert "etcd member k2 did not become healthy" in text
    assert "k1" not in text and "k3" not in text and "No changes" not in text and "Skipped" not in text
