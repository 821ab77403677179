"""Data of the control-plane hosts."""

join_as = "control_plane"
apiserver_port = 6443  # the apiserver's own port on each control plane
admin_kubeconfig = "/etc/kubernetes/admin.conf"
