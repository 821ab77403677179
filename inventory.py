"""pyinfra inventory: the groups control_plane, etcd, workers and lb, read from the cluster file.

The file is $KUBEHA_CLUSTER, or the built-in lab's HA layout. It is checked completely here,
before any host is touched: every problem is printed with the field it concerns.
"""

import sys

from cluster import ClusterFileError, load_checked
from cluster.inventory import groups

try:
    _groups = groups(load_checked())
except ClusterFileError as error:
    sys.stderr.write(f"{error}\n")
    raise SystemExit(2) from None

control_plane = _groups["control_plane"]
etcd = _groups["etcd"]
workers = _groups["workers"]
lb = _groups["lb"]
