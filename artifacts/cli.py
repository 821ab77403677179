"""python3 -m artifacts {build,push,kubeadm-path,versions,paths}"""
import argparse
import json
import os
import sys

from . import build, layout, push, util, versions as V


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m artifacts", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build what is missing or changed (cache keyed by version)")
    b.add_argument("components", nargs="*", help="only these (and what they need); default all")
    b.add_argument("--force", action="store_true", help="rebuild even if up to date")
    b.add_argument("--keep-going", "-k", action="store_true", help="go on after a failed component")
    b.add_argument("--list", action="store_true", help="list the components and exit")
    p = sub.add_parser("push", help="push every image archive to a registry with skopeo")
    p.add_argument("--registry", required=True, help="HOST:PORT, e.g. 10.123.0.1:5000")
    p.add_argument("--tls-verify", action="store_true", help="registry speaks HTTPS with a trusted cert")
    p.add_argument("images", nargs="*", help="only these image keys")
    sub.add_parser("kubeadm-path", help="print the built kubeadm's path (exit 1 if absent)")
    v = sub.add_parser("versions", help="print the pinned versions (JSON)")
    v.add_argument("--key", help="print only this one")
    sub.add_parser("paths", help="print files, images and checksums paths (JSON)")
    sub.add_parser("cluster-knobs", help="print the cluster-file knobs (YAML) that match what is built")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "build":
            if a.list:
                for c in build.order():
                    print("%-20s deps: %s" % (c.name, ", ".join(c.deps) or "-"))
                return 0
            return build.build(a.components or None, force=a.force, keep_going=a.keep_going)
        if a.cmd == "push":
            n = push.push(a.registry, tls_verify=a.tls_verify, only=a.images or None)
            util.say("push", "%d images pushed to %s" % (n, a.registry))
            return 0
        if a.cmd == "kubeadm-path":
            p = layout.file_path("kubeadm")
            if os.path.isfile(p) and os.access(p, os.X_OK):
                print(p)
                return 0
            print("kubeadm not built: %s missing (python3 -m artifacts build kubernetes)" % p, file=sys.stderr)
            return 1
        if a.cmd == "versions":
            if a.key:
                print(V.VERSIONS[a.key])
            else:
                print(json.dumps({"versions": V.VERSIONS, "wanted": V.WANTED,
                                  "substitutions": V.SUBSTITUTIONS}, indent=1, sort_keys=True))
            return 0
        if a.cmd == "cluster-knobs":
            print(cluster_knobs(), end="")
            return 0
        if a.cmd == "paths":
            print(json.dumps({"root": layout.root(), "files_dir": layout.files_dir(),
                              "checksums_file": layout.checksums_path(),
                              "manifest": layout.manifest_path(),
                              "files": {k: layout.url_to_path(u) for k, (_, u) in layout.file_urls().items()},
                              "images": build.images_index()}, indent=1, sort_keys=True))
            return 0
    except util.Failed as e:
        util.stderr("error: %s" % e)
        return 1
    return 2


def cluster_knobs():
    """The deploy's cluster-file knobs (cluster/schema.py names, versions without "v") that
    make a deploy use exactly the artifacts built here, to paste into a lab cluster file."""
    v = {k: x.lstrip("v") for k, x in V.VERSIONS.items()}
    return """\
# Versions of the artifacts built by `python3 -m artifacts build` (artifacts/versions.py).
kubernetes:
  version: "{kubernetes}"
etcd:
  version: "{etcd}"
containerd:
  version: "{containerd}"
  runc_version: "{runc}"
  crictl_version: "{crictl}"
  cni_plugins_version: "{cni_plugins}"
  pause_image_tag: "{pause}"
calico:
  version: "{calico}"
  mode: vxlan            # the calico/node image built here has no BIRD: vxlan only
  install: manifest      # the operator and its images are not built
kube_vip:
  version: "{kube_vip}"
""".format(**v)
