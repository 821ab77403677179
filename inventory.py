"""pyinfra inventory: the groups control_plane, etcd, workers and lb, read from the cluster file, and
`removing`: the machines its `remove:` list takes out of the cluster.

The file is $KUBEHA_CLUSTER, or the built-in lab's HA layout. It is checked completely here,
before any host is touched: every problem is printed with the field it concerns and stops the
run; warnings are printed and the run goes on. pyinfra reads this file once per run, so they
are printed once (group_data/all.py reads the same cached cluster and prints nothing).
"""

import sys

from cluster import ClusterFileError, load_checked
from cluster.inventory import groups
from cluster.model import report
from cluster.validation import warnings_for

try:
    _cluster = load_checked()
except ClusterFileError as error:
    sys.stderr.write(f"{error}\n")
    raise SystemExit(2) from None
_warnings = warnings_for(_cluster)
if _warnings:
    sys.stderr.write(report(_cluster.source, _warnings, "warning(s) on the cluster definition, not fatal") + "\n")
_groups = groups(_cluster)

control_plane = _groups["control_plane"]
etcd = _groups["etcd"]
workers = _groups["workers"]
lb = _groups["lb"]
removing = _groups["removing"]
