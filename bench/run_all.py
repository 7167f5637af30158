#!/usr/bin/env python
"""Run every benchmark one after the other (`make bench`); exit non-zero if any of them fails.

    python bench/run_all.py [--quick] [--only throughput,api_load,...]

Each script prints its own tables; this one repeats their final ``ratios:`` lines at the end.
The scripts set their own database and Redis db, whatever DATABASE_URL / CELERY_BROKER_URL
the caller exported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "throughput": "throughput.py",
    "prepared": "prepared.py",
    "row_shape": "row_shape.py",
    "api_load": "api_load.py",
    "unique_keys": "unique_keys.py",
    "capacity": "capacity.py",
    "priority": "priority.py",
    "list_scale": "list_scale.py",
    "api": "bench_api.py",
    "progress": "bench_progress.py",
    "cleanup": "cleanup_memory.py",
    "observability": "observability.py",
    "metrics_pass": "metrics_pass.py",
    "bulk_send": "bulk_send.py",
    "request_cost": "request_cost.py",
    "broker_drain": "broker_drain.py",
    "workflows": "workflows.py",
    "peers": "peers/run.py",  # taskhub vs plain Celery and five peers, each in its own virtualenv
}


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the taskhub benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smaller runs (each under 30 seconds)")
    parser.add_argument("--only", default=",".join(SCRIPTS), help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCRIPTS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    outcomes = []
    for name in chosen:
        command = [sys.executable, str(HERE / SCRIPTS[name]), *(["--quick"] if args.quick else [])]
        print(f"\n==== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, bufsize=1)
        ratios = ""
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("ratios:"):
                ratios = line.strip()
        code = process.wait()
        outcomes.append((name, code, time.perf_counter() - started, ratios))

    print("\n==== summary")
    for name, code, seconds, ratios in outcomes:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"  {name:<9} {status:<16} {seconds:6.1f}s  {ratios}")
    return 0 if all(code == 0 for _, code, _, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
