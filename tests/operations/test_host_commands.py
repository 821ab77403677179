"""The shell that operations/host.py sends, run for real on a scratch file here."""

import subprocess

from facts.host import SwapState
from operations.host import COMMENT_FSTAB_SWAP


def test_the_fstab_edit_comments_swap_lines_only(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /dev/sdb none swap sw 0 0\n"
                     "  /dev/vda3\tnone\tswap\tsw\t0\t0\n/dev/sdc /srv/swap ext4 defaults 0 2\n")
    subprocess.run(["sh", "-c", COMMENT_FSTAB_SWAP.replace("/etc/fstab", str(fstab))], check=True)
    lines = fstab.read_text().splitlines()
    assert lines[0] == "UUID=1 / ext4 defaults 0 1"
    assert lines[1] == "# kubeha: swap off for Kubernetes: /swapfile none swap sw 0 0"
    assert lines[2] == "# /dev/sdb none swap sw 0 0"
    assert lines[3].startswith("# kubeha: swap off for Kubernetes: ")
    assert lines[4] == "/dev/sdc /srv/swap ext4 defaults 0 2", "a mount point named swap is no swap"
    # what the SwapState fact reads afterwards: no swap line left
    command = SwapState().command().replace("/etc/fstab", str(fstab)).replace("/proc/swaps", "/dev/null")
    left = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert SwapState().process(left.stdout.splitlines()) == {"active": [], "fstab": []}
