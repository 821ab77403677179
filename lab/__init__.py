"""The built-in lab: Linux machines (systemd-nspawn hosts on one bridge) for kubeha.

Run as ``python3 -m lab CMD``; see docs/lab.md.
"""

import sys

# The lab must write nothing into the repository, byte-code caches included.
sys.dont_write_bytecode = True
