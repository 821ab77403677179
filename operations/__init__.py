"""The project's own pyinfra operations: each reads the host's state when it runs and yields
commands only when something differs, otherwise says why nothing is to do (host.noop)."""
