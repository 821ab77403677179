import os
import sys

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def pytest_configure(config):
    config.addinivalue_line("markers", "artifacts: needs the built artifacts (python3 -m artifacts build)")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEHA_ARTIFACTS_DIR", str(tmp_path))
    return tmp_path
