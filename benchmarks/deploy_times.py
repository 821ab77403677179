"""Prints how long the lab and the deploy take; asserts nothing.

    python3 benchmarks/deploy_times.py [--cluster FILE] [--stages preflight,prep,...]
    python3 benchmarks/deploy_times.py --full [--cluster FILE ...]

Stages (the default): from a fresh lab (down, then up), the lab's `up`, each stage run alone in
deploy order, then a no-op re-run and a --dry of the same stages; the default stages need no
Kubernetes binaries.

--full: for each cluster file (default: the lab's HA and compact layouts), the whole deploy.py
on fresh lab machines, as the e2e tier runs it: `--dry` on the fresh machines, the deploy, a
no-op re-run, `--dry` on the converged cluster, the VIP failover (the VIP holder's machine
stopped cleanly, then its link cut; for how long the API did not answer through the VIP, probed
every 0.2 s), and an etcd restore (tests/e2e/e2e_backup.py's drill: a snapshot by backup.py, two
members' data lost, restore.py until the API answers through the VIP). Needs the artifacts built.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CLUSTERS = PROJECT / "lab" / "clusters"
BASE_STAGES = "preflight,prep,container_runtime,loadbalancer,etcd"


def timed(argv, env):
    started = time.monotonic()
    result = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def stage_figures(cluster_file, stages):
    env = {**os.environ, "KUBEHA_CLUSTER": cluster_file, "KUBEHA_STATE_DIR": tempfile.mkdtemp(prefix="kubeha-bench-")}
    lab = [sys.executable, "-m", "lab"]
    pyinfra = [sys.executable, "-m", "pyinfra", "-y", "inventory.py"]
    figures = [("lab down", timed(lab + ["down"], env)), ("lab up (fresh machines)", timed(lab + ["up"], env))]
    deploys = [f"tasks/{stage}.py" for stage in stages.split(",")]
    for deploy in deploys:
        figures.append((f"first run: {deploy}", timed(pyinfra + [deploy], env)))
    figures.append(("no-op re-run: " + " ".join(deploys), timed(pyinfra + deploys, env)))
    figures.append(("--dry on the converged lab", timed(pyinfra + deploys + ["--dry"], env)))
    return figures


def full_figures(cluster_file):
    """The e2e tier's own harness (tests/e2e/e2e_cluster.py), timed."""
    sys.path[:0] = [str(PROJECT / "tests" / "e2e"), str(PROJECT / "tests"), str(PROJECT)]
    from e2e_backup import Drill
    from e2e_cluster import DeployedCluster
    from support import wait_until

    cluster = DeployedCluster.fresh(Path(cluster_file), Path(tempfile.mkdtemp(prefix="kubeha-bench-")))
    cluster.timed("no-op re-run", cluster.deploy)
    cluster.timed("--dry on the converged cluster", lambda: cluster.deploy(dry=True))
    figures = [(f"{cluster.name}: {what}", seconds) for what, seconds in cluster.times.items()]
    for fault in ("stop", "cut"):  # a clean shutdown, then what looks like a crash
        assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), "the cluster did not recover"
        failover = cluster.stop_vip_holder(fault)
        cluster.start(failover.holder)
        figures.append((f"{cluster.name}: `lab {fault}` of the VIP holder {failover.holder}", failover.stop_seconds))
        figures.append((f"{cluster.name}: the API not answering through the VIP meanwhile", failover.outage_seconds))
    assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), "the cluster did not recover"
    drill = Drill(cluster, wiped=2)
    for what, seconds in drill.run().items():
        figures.append((f"{cluster.name}: {what}, snapshot of {drill.snapshot_bytes} bytes", seconds))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", action="append", help="cluster file (--full: may be repeated)")
    parser.add_argument("--stages", default=BASE_STAGES)
    parser.add_argument("--full", action="store_true", help="time deploy.py on fresh machines, per topology")
    args = parser.parse_args()
    if args.full:
        files = args.cluster or [str(CLUSTERS / "ha.yaml"), str(CLUSTERS / "compact.yaml")]
        figures = [figure for cluster_file in files for figure in full_figures(cluster_file)]
    else:
        figures = stage_figures((args.cluster or [str(CLUSTERS / "ha.yaml")])[-1], args.stages)
    width = max(len(name) for name, _ in figures)
    print(f"{'what':<{width}}  seconds")
    for name, seconds in figures:
        print(f"{name:<{width}}  {seconds:7.1f}")


if __name__ == "__main__":
    main()
