"""Helpers shared by the tests: the shipped cluster files, made loadable on this machine."""

from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_FILES = {
    "topology-a": PROJECT / "examples" / "topology-a.yaml",
    "topology-b": PROJECT / "examples" / "topology-b.yaml",
    "lab-ha": PROJECT / "lab" / "clusters" / "ha.yaml",
    "lab-compact": PROJECT / "lab" / "clusters" / "compact.yaml",
}


def local_copy(source, directory, **overrides):
    """A copy of a cluster file whose local paths (SSH key, known_hosts, checksums) exist here.

    The copy keeps every setting; only files this machine must read are pointed at stand-ins,
    and a lab checksums file is left out so the pinned upstream checksums apply.
    """
    data = yaml.safe_load(Path(source).read_text())
    key = directory / "id_test"
    key.write_text("not a real key\n")
    data["ssh"]["key"] = str(key)
    if data["ssh"].get("known_hosts_file"):
        known = directory / "known_hosts"
        known.write_text("")
        data["ssh"]["known_hosts_file"] = str(known)
    if data.get("offline", {}).get("checksums_file"):
        del data["offline"]["checksums_file"]
    for dotted, value in overrides.items():
        section, _, key_name = dotted.partition(".")
        if key_name:
            data.setdefault(section, {})[key_name] = value
        else:
            data[section] = value
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
