"""Fetching the pinned release files onto a host, checksum verified."""

from pyinfra.operations import files

from cluster import downloads, paths
from cluster.context import arch


def fetch(cluster, component, dest=None, mode="0644"):
    """Download `component`'s file for this host's architecture to `dest` (a full path; by
    default the download cache, under the release file's own name).

    pyinfra's files.download checks the sha256 of a file already there (nothing is fetched
    again when it matches) and of the file it fetches (a mismatch fails the host).
    Returns (path on the host, sha256).
    """
    item = downloads.by_component(cluster)[component]
    host_arch = arch()
    sha256 = item.sha256(cluster, host_arch)
    if dest:  # the download cache itself is made by the prep stage
        files.directory(name=f"Directory for {component}", path=dest.rsplit("/", 1)[0], mode="0755")
    dest = dest or f"{paths.DOWNLOAD_DIR}/{item.file_name(host_arch)}"
    files.download(
        name=f"Download {component} {item.version}",
        src=item.url(cluster, host_arch),
        dest=dest,
        sha256sum=sha256,
        mode=mode,
    )
    return dest, sha256
