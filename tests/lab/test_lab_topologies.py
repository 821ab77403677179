"""Both lab topologies come up; `up` with the other cluster file replaces the running lab."""

import pytest

from lab import config, paths

pytestmark = pytest.mark.lab

CLUSTERS = paths.REPO_ROOT / "lab" / "clusters"


def test_the_other_topology_replaces_the_lab_and_comes_up(lab):
    other_file = CLUSTERS / ("ha.yaml" if lab.config.name == "lab-compact" else "compact.yaml")
    other = config.load(other_file)
    out = lab.cli("up", cluster=other_file).stdout
    assert f"is not {other.name}: taking it down" in out
    s = lab.status()
    assert s["lab"] == other.name and s["status"] == "ready"
    assert [(h["name"], h["address"], h["machine"], h["ssh"]) for h in s["hosts"]] == [
        (h.name, h.address, "running", True) for h in other.hosts
    ]
    # no host of the other lab is left
    assert not any(paths.MACHINES.joinpath(h.name).exists() for h in lab.hosts)
    for h in other.hosts:
        cp = lab.cli("ssh", h.name, "hostname", cluster=other_file)
        assert cp.stdout.strip() == h.name
    # the next test asking for `lab` gets the session's own lab back (ensure_up)
