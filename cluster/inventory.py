"""Turns the cluster definition into pyinfra inventory groups."""


def host_data(host):
    """Per-host data: how to reach it and which cluster node it is."""
    return {
        "node_name": host.name,
        "ssh_hostname": host.address,
        "ssh_user": host.ssh_user,
        "ssh_key": host.ssh_key,
        "ssh_port": host.ssh_port,
    }


def groups(cluster, name_prefix=""):
    """{group: [(inventory name, data)]} for the groups pyinfra sees: the four roles, and
    `removing`, the machines of `remove:` (reached for their cleanup; in no role's group)."""
    names = {"control_plane": "control_plane", "etcd": "etcd", "worker": "workers", "lb": "lb"}
    result = {
        group: [(name_prefix + host.name, host_data(host)) for host in cluster.group(role)]
        for role, group in names.items()
    }
    result["removing"] = [(name_prefix + host.name, host_data(host)) for host in cluster.removals]
    return result
