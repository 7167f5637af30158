#!/usr/bin/env python
"""What a unique key costs a create, over real HTTP (issue 21: keyed create p99 <= 1.5x unkeyed).

The Procfile's ``web`` line (uvicorn, WEB_CONCURRENCY=2), this benchmark's own database and Redis
db, no worker (created jobs stay pending); the user throttle raised as in api_load.py. 16 clients
(one user each, a keep-alive connection each, bench/http_client.py) send ``POST /api/v1/jobs/``
back to back, in three scenarios run in turn (ABCABC..., so that the machine's other load falls on
all of them alike):

* ``no key``: the plain create;
* ``new key``: a fresh ``unique`` key per request (``reject``): the INSERT … ON CONFLICT path that
  inserts every time;
* ``one key``: each client repeats its own key (``reject``): after the first, every request is a
  duplicate, answered 200 with the holder (the row lock, the count, the timeline line updated).

Printed: requests, req/s, p50/p95/p99 per scenario and the ratios of the keyed p99s to the unkeyed.
Then a bulk create in-process (``job_create_bulk``, what ``POST /api/v1/jobs/bulk/`` calls) of 500
``reject`` items with new keys, and the same 500 again (all duplicates of pending holders): median
ms and statements of a few rounds. Own database taskhub_bench_unique, own Redis db 3.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_unique", redis_db=3)

CLIENTS = 16
WEB_PROCESSES = "2"
JOB = {"celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
TARGET = 1.5
BULK = 500


def percentile(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def run(port: int, tokens: list[str], seconds: float, rounds: int) -> dict[str, dict]:
    from bench.http_client import Client

    clients = [Client(port, token=token) for token in tokens]
    counter = 0

    def body(scenario: str, index: int) -> dict:
        nonlocal counter
        counter += 1
        if scenario == "new key":
            return {**JOB, "unique": {"key": f"fresh-{counter}"}}
        if scenario == "one key":
            return {**JOB, "unique": {"key": f"client-{index}"}}
        return JOB

    results = {
        name: {"latencies": [], "statuses": Counter(), "elapsed": 0.0} for name in ("no key", "new key", "one key")
    }

    async def scenario(name: str, timed: bool) -> None:
        deadline = time.perf_counter() + seconds

        async def loop(index: int, client) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.request("POST", "/api/v1/jobs/", body(name, index))
                    status = response.status
                except Exception:  # noqa: BLE001 - a lost connection counts as an error of the run
                    status = "lost"
                if timed:
                    results[name]["latencies"].append(time.perf_counter() - started)
                    results[name]["statuses"][status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop(index, client) for index, client in enumerate(clients)))
        if timed:
            results[name]["elapsed"] += time.perf_counter() - started

    for name in results:  # warm-up: imports, connections, caches; the first of each one-key client
        await scenario(name, timed=False)
    for _ in range(rounds):
        for name in results:
            await scenario(name, timed=True)
    for client in clients:
        await client.close()
    return results


def bulk_rounds(rounds: int) -> list[list]:
    """``job_create_bulk`` of ``BULK`` new keys, then the same again (duplicates): ms and statements."""
    from django.db import connection

    from jobs.services.creation import job_create_bulk

    owner = common.make_user("unique-bulk")
    measured: dict[str, tuple[list[float], list[int]]] = {"new keys": ([], []), "all duplicates": ([], [])}
    count = [0]

    def counted(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    for round_ in range(rounds + 1):  # the first round warms up
        items = [{**JOB, "unique": {"key": f"bulk-{round_}-{n}"}} for n in range(BULK)]
        for name in measured:
            count[0] = 0
            started = time.perf_counter()
            with connection.execute_wrapper(counted):
                job_create_bulk(owner=owner, items=items)
            if round_:
                measured[name][0].append((time.perf_counter() - started) * 1000)
                measured[name][1].append(count[0])
    return [[name, statistics.median(ms), statistics.median(counts)] for name, (ms, counts) in measured.items()]


def main() -> int:
    args = common.parse_args(__doc__, lambda p: p.add_argument("--seconds", type=float, help="per turn"))
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    rounds = 2 if args.quick else 3
    with common.bench_environment(ENV):
        from rest_framework_simplejwt.tokens import RefreshToken

        tokens = [str(RefreshToken.for_user(common.make_user(f"unique-{i}")).access_token) for i in range(CLIENTS)]
        port = common.free_port()
        print(f"# web: {common.procfile_command('web')} (WEB_CONCURRENCY={WEB_PROCESSES}, port {port})")
        print(f"# load average at the start: {common.load_average()}")
        env = {"WEB_CONCURRENCY": WEB_PROCESSES, "THROTTLE_USER": "100000000/min", "JWT_ACCESS_MINUTES": "120"}
        web = common.start_web(port, env)
        try:
            results = asyncio.run(run(port, tokens, seconds, rounds))
        finally:
            web.stop()
            log = web.output()
            web.close()
        if "Traceback" in log:
            print(f"# the web processes logged errors:\n{log[-3000:]}", file=sys.stderr)
        bulk = bulk_rounds(rounds=3 if args.quick else 6)
    rows = []
    for name, result in results.items():
        latencies, statuses = result["latencies"], result["statuses"]
        rate = len(latencies) / result["elapsed"] if result["elapsed"] else 0.0
        rows.append(
            [name, len(latencies), rate, *(percentile(latencies, q) for q in (0.5, 0.95, 0.99)), dict(statuses)]
        )
    common.print_table(
        f"POST /api/v1/jobs/ over HTTP: {CLIENTS} clients, {WEB_PROCESSES} web processes, "
        f"{rounds} x {seconds:g} s each",
        ["scenario", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "statuses"],
        rows,
    )
    common.print_table(
        f"job_create_bulk of {BULK} keyed items in-process, median of the rounds",
        ["bulk", "median ms", "statements"],
        bulk,
    )
    print(f"# load average at the end: {common.load_average()}")
    p99 = {name: percentile(result["latencies"], 0.99) for name, result in results.items()}
    errors = sum(
        count
        for result in results.values()
        for status, count in result["statuses"].items()
        if status == "lost" or status >= 400
    )
    new, same = p99["new key"] / p99["no key"], p99["one key"] / p99["no key"]
    verdict = "met" if max(new, same) <= TARGET and not errors else "missed"
    print(
        f"\nratios: create p99 no key {p99['no key']:.0f} ms; new key {p99['new key']:.0f} ms ({new:.2f}x); "
        f"one key (duplicates) {p99['one key']:.0f} ms ({same:.2f}x); target <= {TARGET}x: {verdict}; errors {errors}"
    )
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
