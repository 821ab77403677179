"""Failing one host with a message, the same way in every stage: at once, or once a command has
kept failing."""

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


def retry(command, what, attempts=60, delay=2, diagnose=None):
    """A command that runs `command` until it succeeds, at most `attempts` times `delay` seconds
    apart, and then fails with `what` (and how long it waited) on stderr, after what the
    command `diagnose` (if any) prints, also on stderr."""
    explain = f"{{ {diagnose}; }} >&2; " if diagnose else ""
    return (f"n=0; until {command}; do n=$((n+1)); if [ $n -ge {attempts} ]; then {explain}"
            f"echo {shlex.quote(f'kubeha: {what} (gave up after {attempts * delay}s)')} >&2; exit 1; fi; "
            f"sleep {delay}; done")
