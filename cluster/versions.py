"""How versions are written. The cluster file's versions are bare ("1.35.8": the loader takes
"v1.35.8" too and drops the "v"); upstream's release tags, image tags and kubeadm's
kubernetesVersion carry it."""


def release_tag(version):
    """"1.35.8" -> "v1.35.8", upstream's tag of a release."""
    return f"v{bare(version)}"


def bare(version):
    """"v1.35.8" (or "1.35.8") -> "1.35.8"."""
    return str(version).removeprefix("v")
