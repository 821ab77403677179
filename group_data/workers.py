"""Data of the worker hosts."""

join_as = "worker"
