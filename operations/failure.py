"""Failing one host with a message, the same way in every stage."""

import shlex

from pyinfra import host, logger, state


def fail(message):
    """Fail this host, and only it, with `message`: a failing command when the run executes
    (pyinfra then runs nothing more on it), a warning in a plan. Use with `yield from`."""
    if state.is_executing:
        host.log_styled(message, fg="red", log_func=logger.error)
        yield f"echo {shlex.quote('kubeha: ' + message)} >&2; exit 1"
    else:
        host.noop(f"will fail: {message}")
