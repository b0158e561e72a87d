"""`make bench`: every benchmark, one after the other, merged into bench/results/latest.json.

The coverage engine (bench.run) builds the week in its own database first; the weekly report
is measured on that week; the live fan-out and the tracker rate each prepare their own
database and servers. Each figure is reported against its target by the module that measures
it; this file only runs them in turn and merges what they wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import DB_NAME, RESULTS, database_url, local_host
from bench.run import main as coverage_main


def run_module(module: str, *args: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", module, *args, "--output", str(output)]
        print(f"\n==> {' '.join(command[1:])}", flush=True)
        finished = subprocess.run(command, check=False)
        if finished.returncode != 0 or not output.is_file():
            print(f"warning: {module} failed (exit {finished.returncode})", flush=True)
            return {}
        return json.loads(output.read_text())


def main() -> int:
    status = coverage_main(sys.argv[1:])
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    port = int(os.environ.get("MARAUDES_PG_PORT", "54329"))
    url = database_url(host=local_host(port), port=port, name=DB_NAME)
    results |= run_module("bench.report", "--database-url", url)
    results |= run_module("bench.fanout")
    results |= run_module("bench.tracker")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n==> all figures in {RESULTS}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
