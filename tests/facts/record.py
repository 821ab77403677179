"""Record a fact case from this machine: run the fact's command with sh, save its output.

    python3 tests/facts/record.py etcd.EtcdMembers recorded_healthy --arg '{"endpoints": ...}'

writes tests/facts/etcd.EtcdMembers/recorded_healthy.json with ``arg``, ``output`` (stdout
lines) and ``fact`` (what process() makes of them, to be checked by hand before committing).
Run it where the tools and files exist, e.g. inside ``unshare -m`` with an overlay on /etc,
or with PATH pointing at freshly built binaries. Not a test; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("fact", help="module.Fact, e.g. etcd.EtcdMembers")
    parser.add_argument("case", help="case file name without .json")
    parser.add_argument("--arg", default=None, help="the fact's arguments as JSON")
    parser.add_argument("--print", action="store_true", help="print instead of writing")
    options = parser.parse_args()

    module_name, fact_name = options.fact.split(".")
    fact = getattr(importlib.import_module(f"facts.{module_name}"), fact_name)()
    arg = json.loads(options.arg) if options.arg else {}
    command = str(fact.command(**arg))
    run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"command failed ({run.returncode}); a fact command must exit 0:\n{run.stderr}")
    output = run.stdout.splitlines()
    case = {"output": output, "fact": fact.process(output) if output else fact.default()}
    if arg:
        case = {"arg": arg, **case}
    text = json.dumps(case, indent=4) + "\n"
    if options.print:
        print(text)
        return
    path = HERE / options.fact / f"{options.case}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    print(path)


if __name__ == "__main__":
    main()
