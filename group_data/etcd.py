"""Data of the hosts of the external etcd cluster."""

etcd_client_port = 2379
etcd_peer_port = 2380
# Not kubeadm's /var/lib/etcd: `kubeadm reset` on a control plane without an etcd static pod
# empties /var/lib/etcd (its default stacked data dir), which would wipe this member's data
# while it runs. Found on the lab when a control plane was reset to join again.
etcd_data_dir = "/var/lib/kubeha-etcd"
etcd_pki_dir = "/etc/etcd/pki"
