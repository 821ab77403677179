"""The end-to-end tier (marker e2e): deploy.py makes a whole cluster on fresh lab machines, and
the tests check it works, keeps working when machines fail, and that re-runs change nothing.
Each test module names its lab cluster file in CLUSTER_FILE and gets one deployment of it."""

import pytest

from e2e_cluster import DeployedCluster
from lab import paths


def pytest_collection_modifyitems(items):
    """A class sharing its checks with the other layout (BackupAndRestore) names in MORE those
    that stay out of CI on its layout: they get the marker e2e_more, in the order written."""
    for item in items:
        if item.originalname in getattr(item.cls, "MORE", ()):
            item.add_marker(pytest.mark.e2e_more)


@pytest.fixture(scope="module")
def cluster(request, lab_session, tmp_path_factory):
    cluster_file = paths.REPO_ROOT / "lab" / "clusters" / request.module.CLUSTER_FILE
    return DeployedCluster.fresh(cluster_file, tmp_path_factory.mktemp("state"))
