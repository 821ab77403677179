"""Data of the load-balancer hosts (keepalived + haproxy)."""

# keepalived's health check of the local haproxy, as in kubeadm's HA guide
vrrp_check_interval = 3
vrrp_check_weight = -2
vrrp_check_fall = 10
vrrp_check_rise = 2
haproxy_stats_port = 8404
