"""Where the lab keeps things on the machine (see docs/design.md, "Paths outside the repo").

Nothing here is inside the repository: the lab writes nothing into it.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLUSTER_FILE = REPO_ROOT / "lab" / "clusters" / "ha.yaml"
APT_REQUIREMENTS = REPO_ROOT / "lab" / "requirements-apt.txt"

# Caches: kept by `down` (removed by `down --purge`, except the artifacts).
CACHE_DIR = Path("/var/cache/kubeha-lab")
ROOTFS_CACHE = CACHE_DIR / "rootfs"  # ROOTFS_CACHE/<suite>/ = debootstrapped base
APT_CACHE = CACHE_DIR / "apt"  # .deb files the apt proxy has fetched
ARTIFACTS = CACHE_DIR / "artifacts"  # written by the artifact build
ARTIFACT_FILES = ARTIFACTS / "files"  # served on GATEWAY:8080
ARTIFACT_IMAGES = ARTIFACTS / "images"  # OCI archives pushed to GATEWAY:5000

# Runtime state: removed by `down` (except the ssh key pair).
STATE_DIR = Path("/var/lib/kubeha-lab")
STATE_FILE = STATE_DIR / "state.json"
MACHINES = STATE_DIR / "machines"  # MACHINES/<name>/ = a host's root file system
RUN = STATE_DIR / "run"  # pid files, logs, service configs
REGISTRY_DATA = STATE_DIR / "registry"
SSH_DIR = STATE_DIR / "ssh"
LOCK_FILE = Path("/run/lock/kubeha-lab.lock")

# Names on the machine (all removed by `down`).
BRIDGE = "kubeha0"
NETNS_PREFIX = "kubeha-lab-"  # ip netns kubeha-lab-<host>
VETH_PREFIX = "kh-"  # machine side of a host's veth pair ("eth0" inside), always on BRIDGE
FW_CHAIN_FORWARD = "KUBEHA-LAB-FWD"
FW_CHAIN_INPUT = "KUBEHA-LAB-IN"
CGROUP_GROUP = "kubeha-lab"  # <hierarchy>/<current cgroup>/kubeha-lab/<host>

# Ports of the mirror on the gateway address.
FILES_PORT = 8080
REGISTRY_PORT = 5000
APT_PROXY_PORT = 3142
