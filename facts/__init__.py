"""kubeha's own pyinfra facts, one module per subject (kubernetes, etcd, containerd, ...).

Every fact is a ``command()`` run on the host plus a ``process(lines)`` run here. A fact
answers None (or its documented default) when the thing it reads is absent; its command
exits 0 in that case, so "absent" never marks a host as failed. Commands print no secrets.
"""
