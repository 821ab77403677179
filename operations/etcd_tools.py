"""The pinned etcd release on a host: unpacked once under /opt/kubeha/etcd-VERSION (checksum
verified), the tools a host needs linked into kubeha's bin dir."""

from pyinfra import host
from pyinfra.operations import files

from cluster import paths
from operations.archive import unpack
from operations.download import fetch


def install(cluster, tools):
    version = cluster.etcd.version
    release_dir = f"{paths.RELEASES_DIR}/etcd-{version}"
    archive, archive_sha256 = fetch(cluster, "etcd")
    unpack(
        name=f"Unpack etcd {version}",
        archive=archive, archive_sha256=archive_sha256, dest=release_dir,
        targets=tools, strip_components=1,
    )
    for tool in host.loop(tools):
        files.link(name=f"Link {tool} {version}", path=f"{paths.BIN_DIR}/{tool}",
                   target=f"{release_dir}/{tool}")
