"""The kubectl user's kubeconfig, made by kubeadm with its own client certificate (made again
when it nears expiry), and a private local copy of it."""

import hashlib
import os
import shlex
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FileDownloadCommand, FunctionCommand, operation
from pyinfra.facts.files import File, Sha256File

from cluster import certificates
from facts.kubernetes import CertificateExpiry


@operation()
def kubeadm_user_kubeconfig(user, group, config_path, kubeconfig, renew_before_days, validity_hours):
    """`kubeadm kubeconfig user` into `kubeconfig` (owned by `user`, 0600), when it is missing or
    its client certificate expires within `renew_before_days`.

    kubeadm signs a new client certificate, valid `validity_hours`, with the cluster CA on this
    control plane; the certificate's organisation is the RBAC group the user's rights are bound to.
    """
    if host.get_fact(File, path=kubeconfig):
        expiry = host.get_fact(CertificateExpiry, paths=[], kubeconfigs=[kubeconfig])
        if kubeconfig not in expiry:
            host.noop(f"{kubeconfig} exists (its client certificate is not embedded: left alone)")
            return
        if not certificates.due(expiry, [kubeconfig], renew_before_days):
            host.noop(f"{kubeconfig} exists, its certificate valid until "
                      f"{certificates.describe(certificates.earliest(expiry))}")
            return
        logger.info(f"{host.print_prefix}re-issue the kubectl user's certificate, which expires "
                    f"{certificates.describe(certificates.earliest(expiry))}")
    directory = kubeconfig.rsplit("/", 1)[0]
    yield f"install -d -m 0700 -o {shlex.quote(user)} -g {shlex.quote(user)} {shlex.quote(directory)}"
    yield (f"umask 077 && kubeadm kubeconfig user --config {shlex.quote(config_path)} "
           f"--client-name {shlex.quote(user)} --org {shlex.quote(group)} --validity-period {validity_hours}h "
           f"> {shlex.quote(kubeconfig)}.new "
           f"&& chown {shlex.quote(user)}: {shlex.quote(kubeconfig)}.new "
           f"&& mv {shlex.quote(kubeconfig)}.new {shlex.quote(kubeconfig)}")


@operation()
def keep_private_copy(src, dest):
    """Copy a secret file from the host to this machine (0600), when the two differ."""
    remote = host.get_fact(Sha256File, path=src)
    local = Path(dest)
    if remote and local.is_file() and hashlib.sha256(local.read_bytes()).hexdigest() == remote:
        host.noop(f"{dest} is up to date")
        return
    local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    yield FileDownloadCommand(src, dest, remote_temp_filename=host.get_temp_filename(dest))
    yield FunctionCommand(os.chmod, (dest, 0o600), {})
