"""python3 -m lab CMD [--cluster FILE]"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import config, core, machines, network, state
from .config import ConfigError, LabConfig
from .proc import LabError, is_root

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_NO_LAB = 3

HOST_COMMANDS = ("ssh", "stop", "start", "kill", "cut", "heal")


def build_parser() -> argparse.ArgumentParser:
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--cluster",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="cluster file (default: $KUBEHA_CLUSTER, else lab/clusters/ha.yaml; "
        "for host commands: the running lab's file)",
    )
    p = argparse.ArgumentParser(
        prog="python3 -m lab",
        description="The kubeha lab: Debian hosts as systemd-nspawn machines on one bridge.",
        parents=[cluster],
    )
    sub = p.add_subparsers(dest="command", metavar="CMD", required=True)
    u = sub.add_parser("up", parents=[cluster],
                       help="build the lab, or grow the running one by the hosts the file adds; boot every host")
    u.add_argument("--prune", action="store_true",
                   help="also remove the running lab's hosts that the cluster file no longer lists")
    d = sub.add_parser("down", parents=[cluster], help="remove everything the lab made, or only the hosts named")
    d.add_argument("names", nargs="*", metavar="NAME", help="remove only these hosts; the rest keeps running")
    d.add_argument("--purge", action="store_true", help="also remove the caches (base rootfs, apt) and the ssh key")
    s = sub.add_parser("status", parents=[cluster], help="show the lab; exit 0 only if all is up")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    x = sub.add_parser("ssh", parents=[cluster], help="ssh to a host as the lab user (strict host keys)")
    x.add_argument("name")
    x.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run (default: a login shell)")
    for name, text in (
        ("stop", "power a host off (its disk and network stay)"),
        ("start", "boot a stopped host"),
        ("cut", "take a host's network link down"),
        ("heal", "bring a host's network link back up"),
    ):
        sub.add_parser(name, parents=[cluster], help=text).add_argument("name")
    k = sub.add_parser("kill", parents=[cluster], help="SIGKILL a systemd service's main process in a host")
    k.add_argument("name")
    k.add_argument("service")
    return p


def _cluster_file(args) -> tuple[Path | None, bool]:
    """(file, explicit): --cluster, else $KUBEHA_CLUSTER, else the default."""
    if getattr(args, "cluster", None):
        return Path(args.cluster), True
    if os.environ.get("KUBEHA_CLUSTER"):
        return Path(os.environ["KUBEHA_CLUSTER"]), True
    return config.default_cluster_file(), False


def resolve_lab(args) -> LabConfig:
    """The lab a command is about. Host commands without an explicit file use the lab that
    is running (so `lab ssh k1` works after `lab up --cluster compact.yaml`)."""
    path, explicit = _cluster_file(args)
    if args.command in HOST_COMMANDS + ("status",) and not explicit:
        st = state.load()
        if st is not None:
            return LabConfig.from_dict(st["lab"], st.get("cluster_file", ""))
    return config.load(path)


def _check_running_lab(lab: LabConfig) -> None:
    st = state.load()
    if st is None:
        raise LabError("no lab on this machine: run `python3 -m lab up` first")
    if st["fingerprint"] != lab.fingerprint():
        raise LabError(
            f"the lab on this machine is {st['lab']['name']} ({st.get('cluster_file')}), not {lab.name}; "
            "pass --cluster with its file"
        )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "down" and args.names and args.purge:
        parser.error("down --purge removes the whole lab and its caches: it takes no host names")
    try:
        lab = None
        if args.command != "down":
            lab = resolve_lab(args)
            host = lab.host(args.name) if args.command in HOST_COMMANDS else None
    except ConfigError as e:
        print(f"lab: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not is_root():
        print("lab: must run as root (it creates network namespaces, bridges, machines)", file=sys.stderr)
        return EXIT_FAIL
    progress = core.Progress()
    try:
        if args.command == "up":
            core.up(lab, progress, prune=args.prune)
            print(core.format_status(core.status()))
            return EXIT_OK
        if args.command == "down" and args.names:
            left = core.down_hosts(args.names, progress)
            print(f"removed {', '.join(args.names)}; the lab keeps {', '.join(h.name for h in left.hosts)}")
            return EXIT_OK
        if args.command == "down":
            problems = core.down(progress, purge=args.purge)
            for p in problems:
                print(f"lab: {p}", file=sys.stderr)
            print("lab is down" if not problems else "lab is down, with problems (above)")
            return EXIT_FAIL if problems else EXIT_OK
        if args.command == "status":
            s = core.status()
            print(json.dumps(s, indent=1) if args.json else core.format_status(s))
            if s["lab"] is None:
                return EXIT_NO_LAB
            return EXIT_OK if core.healthy(s) else EXIT_FAIL
        _check_running_lab(lab)
        if args.command == "ssh":
            cmd = list(args.cmd)
            if cmd and cmd[0] == "--":
                cmd = cmd[1:]
            argv_ = machines.ssh_argv(lab, host, tty=not cmd and sys.stdin.isatty()) + cmd
            sys.stdout.flush()
            os.execvp(argv_[0], argv_)
        if args.command == "stop":
            was = core.stop_host(lab, host)
            print(f"{host.name} {'stopped' if was else 'was not running'}")
        elif args.command == "start":
            did = core.start_host(lab, host, progress)
            print(f"{host.name} {'started' if did else 'was already running'}")
        elif args.command == "kill":
            pid = machines.kill_service(host.name, args.service)
            print(f"{host.name}: sent SIGKILL to the main process of {args.service} (pid {pid} in the host)")
        elif args.command in ("cut", "heal"):
            with state.lock():
                network.set_link(host, args.command == "heal")
            print(f"{host.name}: link {'cut' if args.command == 'cut' else 'healed'}")
        return EXIT_OK
    except ConfigError as e:  # found only once the running lab is known (down NAME)
        print(f"lab: {e}", file=sys.stderr)
        return EXIT_USAGE
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
