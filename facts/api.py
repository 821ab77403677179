"""Whether the Kubernetes API answers on an address."""

import shlex

from pyinfra.api import FactBase


class ApiHealthz(FactBase):
    """GET URL/healthz without credentials (anonymous /healthz is allowed by kubeadm's RBAC).

    Returns True when it answers `ok`, False otherwise; never fails the host.
    """

    def requires_command(self, url):
        return "curl"

    def command(self, url):
        return (f"curl -sk --max-time 5 {shlex.quote(url.rstrip('/') + '/healthz')} 2>/dev/null "
                "|| echo unreachable")

    def process(self, output):
        return bool(output) and output[-1].strip() == "ok"

    @staticmethod
    def default():
        return False
