"""The cluster file's hosts behind pyinfra's @fake connector, for plan tests.

Host names are @fake/<node>; each host's canned command outputs come from the JSON file named
by $KUBEHA_FAKE_STATE ({node: {command substring: output}}), so a test can describe a fresh
cluster or a converged one.
"""

import json
import os

from cluster import load_checked
from cluster.inventory import groups

_responses = {}
if os.environ.get("KUBEHA_FAKE_STATE"):
    with open(os.environ["KUBEHA_FAKE_STATE"]) as _file:
        _responses = json.load(_file)

_groups = groups(load_checked(), name_prefix="@fake/")
for _members in _groups.values():
    for _name, _data in _members:
        _node = _data["node_name"]
        _data["fake_delay"] = 0
        _data["fake_delay_jitter"] = 0
        _data["fake_responses"] = {**_responses.get(_node, {}), **_responses.get("*", {})}

control_plane = _groups["control_plane"]
etcd = _groups["etcd"]
workers = _groups["workers"]
lb = _groups["lb"]
