"""Push every OCI image archive to a registry with skopeo (plain HTTP allowed for the lab)."""
import os
import shutil

from . import build, util


def push(registry, tls_verify=False, base=None, only=None):
    if not shutil.which("skopeo"):
        raise util.Failed("skopeo is needed (apt-get install skopeo)")
    images = [i for i in build.images_index(base) if not only or i["key"] in only]
    missing = [i["ref"] for i in images if not i["present"]]
    if missing:
        raise util.Failed("not built yet: %s (run python3 -m artifacts build)" % ", ".join(missing))
    for i in images:
        dest = "docker://%s/%s" % (registry.rstrip("/"), i["registry_path"])
        util.say("push", "%s -> %s" % (os.path.basename(i["archive"]), dest))
        util.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=%s" % ("true" if tls_verify else "false"),
                  "oci-archive:" + i["archive"], dest], "push")
    return len(images)
