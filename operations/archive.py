"""Installing files out of a downloaded release archive."""

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import File, FileContents


@operation()
def unpack(archive, archive_sha256, dest, targets=(), strip_components=0):
    """Extract `archive` into `dest`.

    A stamp beside the archive records the sha256 of the archive last unpacked, so the same
    archive is never unpacked twice, while a new version, or a missing target file (a name
    relative to `dest`), unpacks it again.
    """
    stamp = f"{archive}.unpacked"
    unpacked = (host.get_fact(FileContents, path=stamp) or [""])[0].strip()
    missing = [t for t in targets if not host.get_fact(File, path=f"{dest}/{t}")]
    if unpacked == archive_sha256 and not missing:
        host.noop(f"{archive} is already unpacked into {dest}")
        return
    tar = f"tar -xzf {shlex.quote(archive)} -C {shlex.quote(dest)} --no-same-owner"
    if strip_components:
        tar += f" --strip-components={strip_components}"
    yield f"mkdir -p {shlex.quote(dest)}"
    yield tar
    yield f"echo {shlex.quote(archive_sha256)} > {shlex.quote(stamp)}"
