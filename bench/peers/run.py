#!/usr/bin/env python
"""taskhub against plain Celery and five peers: 3,000 no-op jobs end to end, two shuffled passes, one table.

    .venv/bin/python bench/peers/run.py [-n 3000] [--passes 2] [--only taskhub,oban,...] [--seed S]
    .venv/bin/python bench/run_all.py --only peers        # what `make bench` runs

Systems (every one with 2 job slots, on the same PostgreSQL, jobs enqueued in bulk, timed from the
first enqueue until the last completion is visible in the system's own store):

* ``taskhub``: bench/throughput.py's jobs phase (``job_create_bulk`` in-process, 500 per call; the
  Procfile's worker with the production ``JOB_*`` defaults), imported and reused.
* ``plain_celery``: bench/throughput.py's baseline (Redis broker + Redis results), reused.
* the peers of bench/peers/*_peer.py, each in its own virtualenv (var/bench-venvs/<peer>, made on
  first run from requirements-<peer>.txt) and its own database (taskhub_bench_peer_<peer>).

Each pass runs every system once in a shuffled order (the seed is printed). The table gives jobs/s
per pass, the ratio of the mean to plain Celery's mean, machine CPU ms per job with its split (the
system's processes, the PostgreSQL backends of its database, redis-server), WAL bytes and index
entries per job (pg_waldump, this database's records only) and the rows kept per finished job.

Own database taskhub_bench_peers (taskhub's phase) and taskhub_bench_peer_<peer>; Redis db 6.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench import _common as common
from bench import throughput  # configures its own database and Redis db at import: replaced just below
from bench.peers import _harness as harness

ENV = common.configure(database="taskhub_bench_peers", redis_db=harness.REDIS_DB)
throughput.ENV = ENV  # its phases read the database and broker from this module global
os.environ["PLAIN_BROKER_URL"] = ENV.broker_url
os.environ["PLAIN_RESULT_BACKEND"] = ENV.broker_url

from bench.peers import (  # noqa: E402
    celery_results_peer,
    django_q2_peer,
    django_tasks_db_peer,
    oban_peer,
    procrastinate_peer,
)

PEERS = {
    module.PEER.name: module.PEER
    for module in (oban_peer, procrastinate_peer, django_q2_peer, django_tasks_db_peer, celery_results_peer)
}
LABELS = {
    "taskhub": "taskhub (job_create_bulk in-process)",
    "plain_celery": "plain Celery (Redis broker + results)",
    **{name: peer.label for name, peer in PEERS.items()},
}


def run_taskhub(n: int, owner, command: str) -> dict:
    common._flush_redis(ENV.broker_url)
    phase, written = throughput.jobs_phase(command, n, "taskhub", {}, owner)
    cpu = phase["cpu_ms"]
    results = written["per_job"]["django_celery_results_taskresult"]["ins"]
    kept = {"jobs_job": 1.0, "jobs_jobevent": written["events_per_job"]}
    if results:
        kept["django_celery_results_taskresult"] = results
    return {
        "rate": phase["rate"],
        "cpu_ms": {
            "processes": cpu["consumer"] + cpu["pool"] + cpu["bench"],
            "postgres": cpu["postgres"],
            "redis": cpu["redis"],
            "machine": cpu["machine"],
        },
        "wal": phase["wal"],
        "kept": kept,
    }


def run_plain(n: int, command: str) -> dict:
    common._flush_redis(ENV.broker_url)
    phase = throughput.plain_phase(command, n)
    cpu = phase["cpu_ms"]
    return {
        "rate": phase["rate"],
        "cpu_ms": {
            "processes": cpu["consumer"] + cpu["pool"] + cpu["bench"],
            "postgres": 0.0,
            "redis": cpu["redis"],
            "machine": cpu["machine"],
        },
        "wal": None,
        "kept": None,
    }


def fingerprint(chosen: list[str]) -> list[str]:
    import celery
    import redis

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    with common._admin_connection() as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    client = redis.Redis.from_url(common.REDIS_URL, socket_connect_timeout=5)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    lines = [
        f"CPU: {model}, {os.cpu_count()} cores",
        f"PostgreSQL {postgres}, Redis {redis_version}",
        f"taskhub: {common.machine_line()}",
        f"plain Celery: celery {celery.__version__} (taskhub's virtualenv)",
    ]
    lines += [f"{name}: {harness.versions(PEERS[name])}" for name in chosen if name in PEERS]
    return lines


def _kb(wal: dict | None, key: str) -> str:
    if not wal or wal[key] != wal[key]:  # nan: pg_waldump could not read the WAL
        return "-"
    return f"{wal[key] / 1024:.2f} KB" if key == "bytes" else f"{wal[key]:.1f}"


def _kept(kept: dict | None) -> str:
    if kept is None:
        return "1 Redis key"
    parts = " + ".join(f"{rows:.2f} {table}" for table, rows in kept.items() if rows)
    return f"{sum(kept.values()):.2f} ({parts})"


def _mean(runs: list[dict], pick) -> float:
    values = [pick(run) for run in runs if run]
    values = [value for value in values if value == value]
    return statistics.mean(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="jobs per system and pass (default 3,000)")
    parser.add_argument("--quick", action="store_true", help="500 jobs, one pass")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(LABELS)}")
    parser.add_argument("--seed", type=int, default=None, help="the shuffle's seed (default: random, printed)")
    args = parser.parse_args(argv)
    n, passes = (500, 1) if args.quick else (args.n, args.passes)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(LABELS)
    unknown = [name for name in chosen if name not in LABELS]
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)} (known: {', '.join(LABELS)})")
    if n < 1 or passes < 1:
        parser.error("-n and --passes must be at least 1")
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)

    failures: dict[str, str] = {}
    for name in [name for name in chosen if name in PEERS]:
        try:
            harness.ensure_venv(PEERS[name])
        except Exception as exc:  # noqa: BLE001 - a peer that cannot be installed is reported, the others run
            failures[name] = f"install failed: {exc}"
    load_before = common.load_average()
    print(f"# load average at the start: {load_before}; {n:,} jobs per system and pass, {passes} passes, seed {seed}")
    runs: dict[str, list[dict | None]] = {name: [] for name in chosen}
    rng = random.Random(seed)
    with common.bench_environment(ENV):
        owner = common.make_user("bench-peers")
        taskhub_worker, plain_worker = throughput.worker_commands()
        for number in range(1, passes + 1):
            order = [name for name in chosen if name not in failures]
            rng.shuffle(order)
            print(f"# pass {number}: {', '.join(order)}", flush=True)
            for name in order:
                try:
                    if name == "taskhub":
                        result = run_taskhub(n, owner, taskhub_worker)
                    elif name == "plain_celery":
                        result = run_plain(n, plain_worker)
                    else:
                        result = harness.run_peer(PEERS[name], n)
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - one system's failure does not stop the others
                    traceback.print_exc()
                    failures.setdefault(name, f"pass {number}: {exc}")
                    result = None
                runs[name].append(result)
                rate = f"{result['rate']:.0f} jobs/s" if result else "FAILED"
                print(f"#   {name}: {rate} (load average {common.load_average()})", flush=True)
        prints = fingerprint(chosen)
    load_after = common.load_average()

    plain = _mean(runs.get("plain_celery", []), lambda run: run["rate"])
    rows = []
    for name in chosen:
        done = [run for run in runs[name] if run]
        rates = " / ".join(f"{run['rate']:.0f}" if run else "failed" for run in runs[name]) or "not run"
        if not done:
            rows.append([LABELS[name], rates, "-", "-", "-", "-", "-", "-"])
            continue
        mean_rate = _mean(done, lambda run: run["rate"])
        split = " / ".join(
            f"{_mean(done, lambda run, key=key: run['cpu_ms'][key]):.2f}" for key in ("processes", "postgres", "redis")
        )
        wal = done[0]["wal"] and {key: _mean(done, lambda run, key=key: run["wal"][key]) for key in done[0]["wal"]}
        rows.append(
            [
                LABELS[name],
                rates,
                f"{mean_rate / plain:.2f}" if plain == plain else "-",
                f"{_mean(done, lambda run: run['cpu_ms']['machine']):.2f}",
                split,
                _kb(wal, "bytes"),
                _kb(wal, "index_entries"),
                _kept(done[-1]["kept"]),
            ]
        )
        rows[-1].insert(0, mean_rate)
    rows.sort(key=lambda row: -row[0] if isinstance(row[0], float) else 0)
    print("\n# fingerprint")
    for line in prints:
        print(f"#   {line}")
    print(f"#   load average before: {load_before}; after: {load_after}")
    common.print_table(
        f"{n:,} no-op jobs enqueued in bulk, end to end, 2 job slots each, same PostgreSQL; {passes} shuffled passes "
        f"(seed {seed}). CPU ms per job: the machine's, then the system's processes / its database's PostgreSQL "
        "backends / redis-server; WAL and index entries (B-tree and GIN inserts) per job in its database",
        [
            "system",
            "jobs/s per pass",
            "vs plain Celery",
            "machine CPU ms/job",
            "procs / pg / redis ms",
            "WAL/job",
            "index entries/job",
            "rows kept/job",
        ],
        [row[1:] if isinstance(row[0], float) else row for row in rows],
    )
    for name, reason in failures.items():
        print(f"\n  {name}: {reason}")
    means = {name: _mean(runs[name], lambda run: run["rate"]) for name in chosen if any(runs[name])}
    if "taskhub" in means and plain == plain:
        versus = [f"taskhub / {name} = {means['taskhub'] / rate:.2f}" for name, rate in means.items() if name in PEERS]
        print(
            f"\nratios: taskhub / plain Celery = {means['taskhub'] / plain:.2f} (means of the passes); "
            f"{', '.join(versus)}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
