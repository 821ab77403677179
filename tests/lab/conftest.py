"""Tests of the built-in lab. Those marked `lab` need root and systemd-nspawn (skipped
otherwise) and share one running lab (lab.testing's session fixture)."""

from lab.testing import lab, lab_session  # noqa: F401  (fixtures used by the tests)


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the built-in lab (root, systemd-nspawn)")
