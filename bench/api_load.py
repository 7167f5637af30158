#!/usr/bin/env python
"""The REST API over real HTTP under load: the web process exactly as the Procfile starts it.

The Procfile's ``web`` line (uvicorn, WEB_CONCURRENCY=2 processes) runs on this benchmark's own
database (PostgreSQL, with the settings' connection pool) and Redis broker, every other setting
its default (the throttle counters in the local-memory cache; the user throttle is raised so it
never answers 429, its look-ups are still paid). No worker runs: created jobs stay pending.

16 clients (one user each, JWT bearer tokens minted for them), each one keep-alive connection
(bench/http_client.py, asyncio + uvloop in this process), send requests back to back for a fixed
time per scenario:

* ``POST /api/v1/jobs/`` (one job), ``GET /api/v1/jobs/{id}/`` (jobs the client created),
  ``GET /api/v1/jobs/?page_size=50`` (the first page of the client's own jobs) and
  ``POST /api/v1/jobs/bulk/`` (500 jobs per request, JOB_BULK_MAX);
* one keep-alive client alone: ``GET /healthz`` and the list page (latency without contention).

Printed per scenario: requests/s, latency p50/p95/p99, errors (any status >= 400 or lost
connection) and where the CPU went (/proc: the web processes, PostgreSQL's backends, redis-server,
this load generator, the whole machine). Loopback only; every scenario is bounded in time and count.

Own database taskhub_bench_api_load, own Redis db 2.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_api_load", redis_db=2)

CLIENTS = 16
WEB_PROCESSES = "2"
BULK_SIZE = 500  # JOB_BULK_MAX, as bench_api.py
MAX_REQUESTS = 50_000  # per scenario, whatever its duration
JOB = {"name": "bench", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
# (scenario, requests/s at least, p99 ms at most): the targets of the performance issue.
TARGETS = {"create": (300, 100), "list": (300, 100), "healthz, 1 client": (None, None)}


@dataclass
class Stats:
    name: str
    clients: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status == "lost" or status >= 400)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def start_web(port: int) -> common.Process:
    env = {"WEB_CONCURRENCY": WEB_PROCESSES, "THROTTLE_USER": "100000000/min", "JWT_ACCESS_MINUTES": "120"}
    return common.start_web(port, env)


class CpuMeter:
    def __init__(self, web: common.Process):
        self.web, self.redis_pid = web, common.redis_server_pid()

    def snapshot(self) -> dict:
        return {
            "web": sum(common.cpu_seconds(self.web.pids()).values()),
            "postgres": common.cpu_seconds(common.postgres_backend_pids(ENV.database)),
            "redis": sum(common.cpu_seconds([self.redis_pid]).values()) if self.redis_pid else float("nan"),
            "client": time.process_time(),
            "machine": common.machine_cpu_seconds(),
        }

    @staticmethod
    def per_request(before: dict, after: dict, requests: int) -> dict[str, float]:
        postgres = sum(seconds - before["postgres"].get(pid, 0.0) for pid, seconds in after["postgres"].items())
        delta = {key: postgres if key == "postgres" else after[key] - before[key] for key in before}
        return {key: value * 1000 / max(1, requests) for key, value in delta.items()}


async def run_scenario(name, clients, make_request, *, seconds: float, meter: CpuMeter, on_response=None) -> Stats:
    """Each client sends ``make_request(client_index, n)`` back to back until the time or the count is up."""
    stats = Stats(name, len(clients))
    deadline = time.perf_counter() + seconds
    sent = 0

    async def loop(index: int, client) -> None:
        nonlocal sent
        n = 0
        while time.perf_counter() < deadline and sent < MAX_REQUESTS:
            sent += 1
            method, path, body = make_request(index, n)
            n += 1
            started = time.perf_counter()
            try:
                response = await client.request(method, path, body)
            except Exception:  # noqa: BLE001 - a lost connection is an error of the run, not of the script
                stats.statuses["lost"] += 1
            else:
                stats.statuses[response.status] += 1
                if on_response and response.status < 400:
                    on_response(index, response)
            stats.latencies.append(time.perf_counter() - started)

    before = meter.snapshot()
    started = time.perf_counter()
    await asyncio.gather(*(loop(index, client) for index, client in enumerate(clients)))
    stats.elapsed = time.perf_counter() - started
    stats.cpu_ms = meter.per_request(before, meter.snapshot(), stats.requests)
    return stats


async def load(port: int, tokens: list[str], seconds: float, meter: CpuMeter) -> list[Stats]:
    from bench.http_client import Client

    clients = [Client(port, token=token) for token in tokens]
    created: list[list[str]] = [[] for _ in clients]

    def remember(index, response) -> None:
        created[index].append(response.json()["id"])

    def create(index, n):
        return "POST", "/api/v1/jobs/", JOB

    def detail(index, n):
        ids = created[index]
        return "GET", f"/api/v1/jobs/{ids[n % len(ids)]}/", None

    def listing(index, n):
        return "GET", "/api/v1/jobs/?page_size=50", None

    def bulk(index, n):
        return "POST", "/api/v1/jobs/bulk/", {"jobs": [JOB] * BULK_SIZE}

    def healthz(index, n):
        return "GET", "/healthz", None

    # Warm-up: every web process imports, connects and fills its caches before anything is timed.
    await run_scenario("warm-up", clients, create, seconds=min(3.0, seconds), meter=meter, on_response=remember)
    await run_scenario("warm-up", clients, listing, seconds=1.0, meter=meter)
    results = [
        await run_scenario("create", clients, create, seconds=seconds, meter=meter, on_response=remember),
        await run_scenario("detail", clients, detail, seconds=seconds, meter=meter),
        await run_scenario("list", clients, listing, seconds=seconds, meter=meter),
        await run_scenario(f"bulk ({BULK_SIZE} jobs)", clients, bulk, seconds=seconds, meter=meter),
        await run_scenario("healthz, 1 client", clients[:1], healthz, seconds=seconds / 2, meter=meter),
        await run_scenario("list, 1 client", clients[:1], listing, seconds=seconds / 2, meter=meter),
    ]
    for client in clients:
        await client.close()
    return results


def verdict(stats: Stats) -> str:
    rate, p99 = TARGETS.get(stats.name, (None, None))
    if stats.name == "healthz, 1 client":
        return "met" if stats.percentile(0.5) <= 2 else "missed (p50 > 2 ms)"
    if rate is None:
        return ""
    missed = [f"< {rate} req/s"] if stats.rate < rate else []
    missed += [f"p99 > {p99} ms"] if stats.percentile(0.99) > p99 else []
    missed += [f"{stats.errors} errors"] if stats.errors else []
    return "missed (" + ", ".join(missed) + ")" if missed else "met"


def main() -> int:
    args = common.parse_args(__doc__, lambda p: p.add_argument("--seconds", type=float, help="per scenario"))
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    try:
        import uvloop
    except ImportError:  # the client then runs on asyncio's own loop
        uvloop = None
    with common.bench_environment(ENV):
        from rest_framework_simplejwt.tokens import RefreshToken

        tokens = [str(RefreshToken.for_user(common.make_user(f"load-{i}")).access_token) for i in range(CLIENTS)]
        port = common.free_port()
        print(f"# web: {common.procfile_command('web')} (WEB_CONCURRENCY={WEB_PROCESSES}, port {port})")
        print(f"# load average at the start: {common.load_average()}")
        web = start_web(port)
        try:
            runner = uvloop.run if uvloop else asyncio.run
            results = runner(load(port, tokens, seconds, CpuMeter(web)))
        finally:
            web.stop()
            log = web.output()
            web.close()
        if "Traceback" in log:
            print(f"# the web processes logged errors:\n{log[-3000:]}", file=sys.stderr)

    common.print_table(
        f"API over HTTP: {CLIENTS} keep-alive clients (unless said), {WEB_PROCESSES} web processes, {seconds:g} s each",
        ["scenario", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "target"],
        [
            [s.name, s.clients, s.requests, s.rate, *(s.percentile(q) for q in (0.5, 0.95, 0.99)), s.errors, verdict(s)]
            for s in results
        ],
    )
    common.print_table(
        "CPU ms per request (/proc): web = uvicorn's processes; client = this load generator",
        ["scenario", "web", "postgres", "redis", "client", "machine"],
        [[s.name, *(s.cpu_ms[k] for k in ("web", "postgres", "redis", "client", "machine"))] for s in results],
    )
    errors = {s.name: dict(s.statuses) for s in results if s.errors}
    if errors:
        print(f"\n  errors by status: {errors}")
    print(f"# load average at the end: {common.load_average()}")
    by_name = {s.name: s for s in results}
    create, bulk = by_name["create"], by_name[f"bulk ({BULK_SIZE} jobs)"]
    print(
        f"\nratios: create {create.rate:.0f} req/s p99 {create.percentile(0.99):.0f} ms; "
        f"list {by_name['list'].rate:.0f} req/s p99 {by_name['list'].percentile(0.99):.0f} ms; "
        f"bulk/single = {bulk.rate * BULK_SIZE / create.rate:.1f}x jobs/s; "
        f"healthz p50 {by_name['healthz, 1 client'].percentile(0.5):.2f} ms; "
        f"errors {sum(s.errors for s in results)}"
    )
    return 0 if not statistics.fmean([s.errors for s in results]) else 1


if __name__ == "__main__":
    sys.exit(main())
