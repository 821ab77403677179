"""The cluster file's hosts behind pyinfra's @fake connector, for plan tests.

Host names are @fake/<node>; each host's canned command outputs come from the JSON file named
by $KUBEHA_FAKE_STATE ({node: {command substring: output}}, "*" for every node), so a test
can describe a fresh cluster or a converged one. Anything not given answers as a fresh Debian 13
amd64 host. The nodes listed under "down" are left out of the inventory: pyinfra could not
connect to them (the @fake connector always connects).
"""

import json
import os

from cluster import load_checked
from cluster.inventory import groups

# a fresh Debian 13 amd64 host, for the facts every stage reads
FRESH_DEBIAN = {
    "uname -s": "Linux",
    "uname -m": "x86_64",
    "command -v useradd": "/usr/sbin/useradd",
    "-release": "/etc/os-release\nID=debian\nVERSION_ID=\"13\"\n---",
}

_responses = {}
if os.environ.get("KUBEHA_FAKE_STATE"):
    with open(os.environ["KUBEHA_FAKE_STATE"]) as _file:
        _responses = json.load(_file)

_groups = groups(load_checked(), name_prefix="@fake/")
_down = set(_responses.get("down", []))
for _group, _members in _groups.items():
    _groups[_group] = _members = [(_name, _data) for _name, _data in _members if _data["node_name"] not in _down]
    for _name, _data in _members:
        _node = _data["node_name"]
        _data["fake_delay"] = 0
        _data["fake_delay_jitter"] = 0
        _data["fake_responses"] = {}
        for _source in (_responses.get(_node, {}), _responses.get("*", {}), FRESH_DEBIAN):
            for _matcher, _output in _source.items():
                _data["fake_responses"].setdefault(_matcher, _output)

control_plane = _groups["control_plane"]
etcd = _groups["etcd"]
workers = _groups["workers"]
lb = _groups["lb"]
removing = _groups["removing"]
