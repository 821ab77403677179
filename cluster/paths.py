"""Where kubeha's files live on a host, and the ports the cluster's services listen on.

The one home of each: tasks, operations and templates take them from here, and hand them to
the facts (which know no paths of their own). kubeadm fixes its own layout under
/etc/kubernetes; it is written here once so the rest of the code names it instead of
spelling it.
"""

from typing import Final

# kubeha's own directories
BIN_DIR: Final = "/usr/local/bin"
SBIN_DIR: Final = "/usr/local/sbin"
RELEASES_DIR: Final = "/opt/kubeha"  # unpacked release archives, one directory per version
KUBEADM_DIR: Final = "/etc/kubeha"  # generated kubeadm configs and manifests to apply
DOWNLOAD_DIR: Final = "/var/cache/kubeha/downloads"

# kubeadm's layout
KUBERNETES_DIR: Final = "/etc/kubernetes"
PKI_DIR: Final = f"{KUBERNETES_DIR}/pki"
KUBEADM_ETCD_PKI_DIR: Final = f"{PKI_DIR}/etcd"  # the etcd CA; stacked etcd's own certificates too
ADMIN_CONF: Final = f"{KUBERNETES_DIR}/admin.conf"
SUPER_ADMIN_CONF: Final = f"{KUBERNETES_DIR}/super-admin.conf"
MANIFESTS_DIR: Final = f"{KUBERNETES_DIR}/manifests"
APISERVER_MANIFEST: Final = f"{MANIFESTS_DIR}/kube-apiserver.yaml"
STACKED_ETCD_DATA_DIR: Final = "/var/lib/etcd"  # kubeadm's etcd static pod
KUBELET_DIR: Final = "/var/lib/kubelet"  # the kubelet's state: its config, client certificate, pods

# external etcd. Not kubeadm's /var/lib/etcd: `kubeadm reset` on a control plane without an
# etcd static pod empties STACKED_ETCD_DATA_DIR, which would wipe this
# member's data while it runs. Found on the lab when a control plane was reset to join again.
ETCD_DATA_DIR: Final = "/var/lib/kubeha-etcd"
ETCD_CONFIG_DIR: Final = "/etc/etcd"
ETCD_PKI_DIR: Final = f"{ETCD_CONFIG_DIR}/pki"
ETCD_ENV_FILE: Final = f"{ETCD_CONFIG_DIR}/initial-cluster.env"  # how a member starts the first time
ETCD_APPLIED_FILE: Final = f"{ETCD_CONFIG_DIR}/running-config.sha256"  # what the running etcd was started with

# containerd
CONTAINERD_SOCKET: Final = "/run/containerd/containerd.sock"
CONTAINERD_CERTS_DIR: Final = "/etc/containerd/certs.d"
RUNC: Final = f"{SBIN_DIR}/runc"

# ports
APISERVER_PORT: Final = 6443  # the apiserver's own port on each control plane
ETCD_CLIENT_PORT: Final = 2379  # external etcd and kubeadm's stacked etcd alike
ETCD_PEER_PORT: Final = 2380
ETCD_METRICS_PORT: Final = 2381  # plain HTTP, on 127.0.0.1 only
HAPROXY_STATS_PORT: Final = 8404  # on the lb hosts
# Kubernetes' and Calico's own defaults, which kubeha does not change
KUBELET_PORT: Final = 10250
KUBELET_HEALTHZ_PORT: Final = 10248  # on 127.0.0.1
KUBE_PROXY_METRICS_PORT: Final = 10249  # on 127.0.0.1
KUBE_PROXY_HEALTHZ_PORT: Final = 10256
CONTROLLER_MANAGER_PORT: Final = 10257
SCHEDULER_PORT: Final = 10259
CALICO_BGP_PORT: Final = 179
CALICO_TYPHA_PORT: Final = 5473
CALICO_FELIX_HEALTH_PORT: Final = 9099
CALICO_VXLAN_PORT: Final = 4789  # UDP
