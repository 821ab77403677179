"""Shared fixtures: cluster files (the examples and the lab's) made loadable on this machine."""

import os

import pytest

from support import CLUSTER_FILES, local_copy


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the built-in lab (root, systemd-nspawn)")
    config.addinivalue_line("markers", "artifacts: needs the built artifacts")
    config.addinivalue_line("markers", "e2e: deploys a whole cluster on the lab")


@pytest.fixture(params=sorted(CLUSTER_FILES))
def any_cluster_file(request, tmp_path):
    """Each of the example and lab cluster files, loadable here."""
    return local_copy(CLUSTER_FILES[request.param], tmp_path)


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A private local state directory for the secrets a test generates."""
    directory = tmp_path / "state"
    monkeypatch.setenv("KUBEHA_STATE_DIR", str(directory))
    return directory


os.environ.setdefault("PYINFRA_FAKE_DELAY", "0")
