"""Prints how long the lab and the deploy take; asserts nothing.

    python3 benchmarks/deploy_times.py [--cluster lab/clusters/ha.yaml] [--stages preflight,prep,...]
                                       [--full]

From a fresh lab (down, then up): the lab's `up`, each stage run alone in deploy order, then a
no-op re-run and a --dry of the same stages. --full runs deploy.py as one piece instead of stage
by stage (the whole cluster; needs the artifacts built).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BASE_STAGES = "preflight,prep,container_runtime,loadbalancer,etcd"


def timed(argv, env):
    started = time.monotonic()
    result = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", default=str(PROJECT / "lab" / "clusters" / "ha.yaml"))
    parser.add_argument("--stages", default=BASE_STAGES)
    parser.add_argument("--full", action="store_true", help="time deploy.py as one run")
    args = parser.parse_args()
    env = {**os.environ, "KUBEHA_CLUSTER": args.cluster,
           "KUBEHA_STATE_DIR": tempfile.mkdtemp(prefix="kubeha-bench-")}
    lab = [sys.executable, "-m", "lab"]
    pyinfra = [sys.executable, "-m", "pyinfra", "-y", "inventory.py"]
    figures = [("lab down", timed(lab + ["down"], env)), ("lab up (fresh machines)", timed(lab + ["up"], env))]
    if args.full:
        deploys = ["deploy.py"]
    else:
        deploys = [f"tasks/{stage}.py" for stage in args.stages.split(",")]
    for deploy in deploys:
        figures.append((f"first run: {deploy}", timed(pyinfra + [deploy], env)))
    figures.append(("no-op re-run: " + " ".join(deploys), timed(pyinfra + deploys, env)))
    figures.append(("--dry on the converged lab", timed(pyinfra + deploys + ["--dry"], env)))
    width = max(len(name) for name, _ in figures)
    print(f"{'what':<{width}}  seconds")
    for name, seconds in figures:
        print(f"{name:<{width}}  {seconds:7.1f}")


if __name__ == "__main__":
    main()
