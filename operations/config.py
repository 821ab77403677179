"""Configuration files with the service that reads them.

One operation writes the file and restarts (or reloads) its service, and only when the file's
content differs from what is wanted. The decision rests on the file on the host, not on
whether an earlier operation ran, so `--dry` reports exactly the restarts a run would make and
a converged host reports none.
"""

import difflib
import hashlib
import io
import shlex

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, operation
from pyinfra.facts.files import FileContents, Sha256File


def _diff(path, content):
    current = host.get_fact(FileContents, path=path) or []
    new = content.decode().splitlines()
    for line in difflib.unified_diff(current, new, fromfile=path, tofile=path, lineterm=""):
        logger.info("  %s", line)


@operation()
def config_file(path, content, mode="0644", service=None, action="restart", daemon_reload=False,
                secret=False):
    """Make `path` hold `content` (str or bytes), then act on `service` if it changed.

    + action: restart, reload (reload-or-restart), or none
    + daemon_reload: the file is a systemd unit or drop-in
    + secret: never print the content (no --diff)
    The file is uploaded to a temporary name and moved into place, so a reader never sees half
    a file.
    """
    data = content.encode() if isinstance(content, str) else content
    wanted = hashlib.sha256(data).hexdigest()
    if host.get_fact(Sha256File, path=path) == wanted:
        host.noop(f"{path} is up to date")
        return
    if state.config.DIFF and not secret:
        _diff(path, data)
    directory = path.rsplit("/", 1)[0] or "/"
    temporary = f"{directory}/.{path.rsplit('/', 1)[1]}.kubeha-new"
    yield f"mkdir -p {shlex.quote(directory)}"
    yield FileUploadCommand(io.BytesIO(data), temporary,
                            remote_temp_filename=host.get_temp_filename(temporary))
    yield f"chmod {mode} {shlex.quote(temporary)} && mv -f {shlex.quote(temporary)} {shlex.quote(path)}"
    if daemon_reload:
        yield "systemctl daemon-reload"
    if service and action != "none":
        verb = "try-reload-or-restart" if action == "reload" else "try-restart"
        yield f"systemctl {verb} {shlex.quote(service)}"



@operation()
def unit_with_config(unit, unit_content, config, config_content, service):
    """A service's unit and its configuration file, with one action for both, decided when it
    runs: a changed unit (another program) restarts the service once both files are in place;
    a changed configuration alone reloads it."""
    unit_changed = host.get_fact(Sha256File, path=unit) != hashlib.sha256(unit_content.encode()).hexdigest()
    if unit_changed:
        yield from config_file._inner(path=config, content=config_content)
        yield from config_file._inner(path=unit, content=unit_content, daemon_reload=True, service=service,
                                      action="restart")
    else:
        yield from config_file._inner(path=config, content=config_content, service=service, action="reload")
