"""Both lab topologies come up; `up` with the other cluster file replaces the running lab."""

import pytest

from lab import config, paths

pytestmark = pytest.mark.lab

COMPACT = paths.REPO_ROOT / "lab" / "clusters" / "compact.yaml"


def test_compact_replaces_ha_and_comes_up(lab):
    compact = config.load(COMPACT)
    if lab.config.name == compact.name:
        pytest.skip("the session's lab is already the compact one")
    out = lab.cli("up", cluster=COMPACT).stdout
    assert f"is not {compact.name}: taking it down" in out
    s = lab.status()
    assert s["lab"] == compact.name and s["status"] == "ready"
    assert [(h["name"], h["address"], h["machine"], h["ssh"]) for h in s["hosts"]] == [
        (h.name, h.address, "running", True) for h in compact.hosts
    ]
    # no host of the other lab is left
    assert not any(paths.MACHINES.joinpath(h.name).exists() for h in lab.hosts)
    for h in compact.hosts:
        cp = lab.cli("ssh", h.name, "hostname", cluster=COMPACT)
        assert cp.stdout.strip() == h.name
    # the next test asking for `lab` gets the session's own lab back (ensure_up)
