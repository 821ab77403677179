"""Shared fixtures: the shipped cluster files (the examples and the lab's) made loadable on this
machine, a private state directory, and the machine tiers' rule that a skip is a failure."""

import os

import pytest

from lab.testing import lab, lab_session  # noqa: F401  (fixtures; imported here only, see lab.testing)
from support import CLUSTER_FILES, local_copy, shipped


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the built-in lab (root, systemd-nspawn)")
    config.addinivalue_line("markers", "artifacts: needs the built artifacts")
    config.addinivalue_line("markers", "e2e: deploys a whole cluster on the lab")
    config.addinivalue_line("markers", "large: the twelve-machine layout, outside CI (make test-large)")
    config.addinivalue_line("markers", "e2e_more: a long day-2 scenario kept out of CI's time budget, often one CI "
                                       "proves on the other layout (make test-e2e-more runs every e2e test)")


@pytest.fixture(params=sorted(CLUSTER_FILES))
def any_cluster_file(request, tmp_path):
    """Each of the example and lab cluster files, loadable here."""
    return local_copy(CLUSTER_FILES[request.param], tmp_path)


@pytest.fixture(params=sorted(CLUSTER_FILES))
def any_cluster(request):
    """Each of the example and lab clusters, loaded (shared: copy the file to change it)."""
    return shipped(request.param)


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A private local state directory for the secrets a test generates."""
    directory = tmp_path / "state"
    monkeypatch.setenv("KUBEHA_STATE_DIR", str(directory))
    return directory


MACHINE_MARKERS = ("lab", "artifacts", "e2e", "large")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With KUBEHA_REQUIRE_MACHINES=1 (`make test-lab`, CI) a skipped lab, artifacts or e2e test
    fails: a tier that silently did not run must not pass as green."""
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail")
            and os.environ.get("KUBEHA_REQUIRE_MACHINES") == "1"
            and any(item.get_closest_marker(name) for name in MACHINE_MARKERS)):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but KUBEHA_REQUIRE_MACHINES=1 says this tier must run: {reason}"


os.environ.setdefault("PYINFRA_FAKE_DELAY", "0")
