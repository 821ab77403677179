"""Everything decided without touching a host: the cluster file (schema, loading, its checks), the
run's context, host paths and ports, each component's files, the host checks and the report."""

import os
from functools import lru_cache
from pathlib import Path

from cluster.model import ClusterFileError

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CLUSTER_FILE = PROJECT_DIR / "lab" / "clusters" / "ha.yaml"


def cluster_file():
    """The cluster file this run uses: $KUBEHA_CLUSTER, else the built-in lab's HA layout."""
    return Path(os.environ.get("KUBEHA_CLUSTER") or DEFAULT_CLUSTER_FILE)


@lru_cache(maxsize=None)
def load_checked(path=None):
    """The cluster of this run, validated; raises ClusterFileError listing every problem. What is
    not fatal is cluster.validation.warnings_for(cluster) (inventory.py prints it)."""
    from cluster.validation import validate

    path = Path(path) if path else cluster_file()
    cluster, problems = validate(path)
    if problems:
        raise ClusterFileError(path, problems)
    return cluster
