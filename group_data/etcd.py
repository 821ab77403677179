"""Data of the hosts of the external etcd cluster."""

etcd_client_port = 2379
etcd_peer_port = 2380
etcd_data_dir = "/var/lib/etcd"
etcd_pki_dir = "/etc/etcd/pki"
