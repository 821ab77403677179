"""Build every component, skipping those whose stamp says inputs and outputs are unchanged."""
import hashlib
import json
import os
import time

from . import components as C, layout, util, versions as V


def _key(comp, ctx, keys):
    data = {"inputs": comp.inputs(ctx), "recipe": comp.recipe_hash(),
            "deps": {d: keys[d] for d in comp.deps}}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _stamp_path(ctx, comp):
    return os.path.join(ctx.state, comp.name + ".json")


def _outputs_ok(stamp, outputs):
    """Every output exists with the size and mtime recorded when it was built."""
    rec = stamp.get("outputs", {})
    for p in outputs:
        r = rec.get(p)
        if r is None or not os.path.exists(p):
            return False
        st = os.stat(p)
        if st.st_size != r["size"] or int(st.st_mtime) != r["mtime"]:
            return False
    return True


def _record(outputs):
    res = {}
    for p in outputs:
        st = os.stat(p)
        res[p] = {"size": st.st_size, "mtime": int(st.st_mtime), "sha256": util.sha256_file(p)}
    return res


def order(names=None):
    """Components in dependency order; with names, those plus what they depend on."""
    want = set(names or C.BY_NAME)
    for n in list(want):
        if n not in C.BY_NAME:
            raise util.Failed("unknown component %r (known: %s)" % (n, ", ".join(C.BY_NAME)))
    changed = True
    while changed:
        changed = False
        for n in list(want):
            for d in C.BY_NAME[n].deps:
                if d not in want:
                    want.add(d)
                    changed = True
    done, res = set(), []
    while len(res) < len(want):
        for c in C.ALL:
            if c.name in want and c.name not in done and all(d in done for d in c.deps):
                res.append(c)
                done.add(c.name)
    return res


APT_REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements-apt.txt")


def apt_requirements():
    with open(APT_REQUIREMENTS) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def ensure_apt_packages():
    """Install the Debian packages the build needs when some are missing (root only)."""
    import shutil
    import subprocess
    wanted = apt_requirements()
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + wanted,
                       capture_output=True, text=True)
    installed = {l.split()[0].split(":")[0] for l in r.stdout.splitlines() if l.endswith(" installed")}
    missing = [p for p in wanted if p not in installed]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise util.Failed("missing Debian packages: %s" % " ".join(missing))
    util.say("setup", "apt-get install %s" % " ".join(missing))
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    util.run(["apt-get", "update", "-qq"], "setup", env=env, quiet=True)
    util.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, "setup", env=env, quiet=True)


def build(names=None, force=False, keep_going=False, base=None):
    ensure_apt_packages()
    ctx = C.Ctx(base)
    for d in (ctx.base, ctx.work, ctx.out, ctx.logs, ctx.state):
        os.makedirs(d, exist_ok=True)
    # One build at a time per cache: two would write the same stamps and files.
    import fcntl
    lock = open(os.path.join(ctx.base, ".build.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        util.say("build", "another build holds %s; waiting" % lock.name)
        fcntl.flock(lock, fcntl.LOCK_EX)
    keys, results = {}, []
    t0 = time.monotonic()
    for comp in order(names):
        start = time.monotonic()
        if any(status != "built" and status != "cached" for n, status, _ in results if n in comp.deps):
            results.append((comp.name, "skipped (dependency failed)", 0))
            util.say(comp.name, "skipped: a dependency failed")
            continue
        try:
            key = _key(comp, ctx, keys)
            keys[comp.name] = key
            sp = _stamp_path(ctx, comp)
            stamp = json.load(open(sp)) if os.path.exists(sp) else {}
            outputs = comp.outputs(ctx)
            if not force and stamp.get("key") == key and _outputs_ok(stamp, outputs):
                results.append((comp.name, "cached", time.monotonic() - start))
                util.say(comp.name, "up to date (cached)")
                continue
            util.say(comp.name, "building (log: %s)" % ctx.log(comp.name))
            if os.path.exists(sp):
                os.unlink(sp)
            comp.build(ctx)
            missing = [p for p in outputs if not os.path.exists(p)]
            if missing:
                raise util.Failed("%s: build finished without %s" % (comp.name, ", ".join(missing)))
            util.write_text(sp, json.dumps({"key": key, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                            "seconds": round(time.monotonic() - start, 1),
                                            "outputs": _record(outputs)}, indent=1, sort_keys=True))
            results.append((comp.name, "built", time.monotonic() - start))
            util.say(comp.name, "built in %s" % util.fmt_secs(time.monotonic() - start))
        except (util.Failed, OSError, KeyError, ValueError) as e:
            results.append((comp.name, "failed", time.monotonic() - start))
            util.stderr("[%s] FAILED: %s" % (comp.name, e))
            if not keep_going:
                break
    path, _ = layout.write_checksums(ctx.base)
    write_manifest(ctx.base)
    util.say("build", "checksums: %s" % path)
    print("\nsummary (total %s):" % util.fmt_secs(time.monotonic() - t0))
    for n, status, secs in results:
        print("  %-20s %-28s %s" % (n, status, util.fmt_secs(secs)))
    return 0 if all(s in ("built", "cached") for _, s, _ in results) else 1


def images_index(base=None):
    """[{ref, registry_path, archive, present}] for every image the deploy runs."""
    res = []
    for key, ref in layout.image_refs().items():
        p = layout.archive_path(ref, base)
        res.append({"key": key, "ref": ref, "registry_path": layout.registry_path(ref), "archive": p,
                    "present": os.path.exists(p)})
    return res


def write_manifest(base=None):
    """<cache>/manifest.json: what was built, where, and which pins were substituted."""
    base = base or layout.root()
    files = {}
    for comp, (ver, url) in layout.file_urls().items():
        p = layout.url_to_path(url, base)
        files[comp] = {"version": ver, "url": url, "path": p, "present": os.path.exists(p)}
    data = {"versions": V.VERSIONS, "wanted": V.WANTED, "substitutions": V.SUBSTITUTIONS, "arch": V.ARCH,
            "files_dir": layout.files_dir(base), "checksums_file": layout.checksums_path(base),
            "files": files, "images": images_index(base)}
    util.write_text(layout.manifest_path(base), json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data
