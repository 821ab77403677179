"""The start of a stage, on every host.

pyinfra orders operations only within each host's own sequence: a worker's join would be free
to run before the first control plane's init. Every stage therefore begins with this
operation on every host; it changes nothing, and no host passes it before every host has
finished the stage before.
"""

from pyinfra import host
from pyinfra.api import operation


@operation()
def begin(title):
    host.noop(f"stage: {title}")
    yield from ()
