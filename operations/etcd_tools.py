"""The pinned etcd release on a host: unpacked once under /opt/kubeha/etcd-VERSION (checksum
verified), the tools a host needs linked into its bin dir."""

from pyinfra import host
from pyinfra.operations import files

from cluster.context import cluster
from operations.archive import unpack
from operations.download import fetch


def install(tools):
    version = cluster().etcd.version
    release_dir = f"/opt/kubeha/etcd-{version}"
    archive, archive_sha256 = fetch("etcd")
    unpack(
        name=f"Unpack etcd {version}",
        archive=archive, archive_sha256=archive_sha256, dest=release_dir,
        targets=tools, strip_components=1,
    )
    for tool in host.loop(tools):
        files.link(name=f"Link {tool} {version}", path=f"{host.data.bin_dir}/{tool}",
                   target=f"{release_dir}/{tool}")
