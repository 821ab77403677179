"""Tests of the built-in lab. Those marked `lab` need root and systemd-nspawn and share one
running lab (the session fixture of lab.testing, imported once in tests/conftest.py)."""
