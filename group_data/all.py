"""What pyinfra needs for every host: how it logs in (the cluster file's SSH settings). Paths and
ports of the cluster live in cluster/paths.py."""

from cluster import load_checked

_cluster = load_checked()

# log in as the cluster file's user and use sudo for privileged work
_sudo = _cluster.ssh.sudo
ssh_known_hosts_file = _cluster.ssh.known_hosts_file
ssh_strict_host_key_checking = _cluster.ssh.strict_host_key_checking
ssh_connect_retries = 2
