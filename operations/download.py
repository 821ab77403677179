"""Fetching the pinned release files onto a host, checksum verified."""

from pyinfra import host
from pyinfra.operations import files

from cluster import downloads
from cluster.context import arch, cluster


def fetch(component, dest_dir=None, mode="0644"):
    """Download `component`'s file for this host's architecture.

    Into `dest_dir`, or the download cache. pyinfra's files.download checks the sha256 of a
    file already there (nothing is fetched again when it matches) and of the file it fetches
    (a mismatch fails the host). Returns (path on the host, sha256).
    """
    item = downloads.by_component(cluster())[component]
    host_arch = arch()
    sha256 = item.sha256(cluster(), host_arch)
    file_name = item.file_name.format(v=item.version, arch=host_arch)
    if dest_dir:  # an installed binary keeps its plain name
        file_name = component
    dest = f"{dest_dir or host.data.download_dir}/{file_name}"
    files.download(
        name=f"Download {component} {item.version}",
        src=item.url(cluster(), host_arch),
        dest=dest,
        sha256sum=sha256,
        mode=mode,
    )
    return dest, sha256
