"""Data every host gets: how pyinfra logs in and where the cluster's files live on a host."""

from cluster import load_checked

_cluster = load_checked()

# log in as the cluster file's user and use sudo for privileged work
_sudo = _cluster.ssh.sudo
ssh_known_hosts_file = _cluster.ssh.known_hosts_file
ssh_strict_host_key_checking = _cluster.ssh.strict_host_key_checking
ssh_connect_retries = 2

# paths shared by several stages
bin_dir = "/usr/local/bin"
kubernetes_dir = "/etc/kubernetes"
pki_dir = "/etc/kubernetes/pki"
kubeadm_dir = "/etc/kubeha"  # generated kubeadm configs and manifests to apply
download_dir = "/var/cache/kubeha/downloads"
