#!/usr/bin/env python
"""64 API clients for 60 seconds over real HTTP: create, detail and list mixed, zero errors.

The Reliability issue's load check. The Procfile's ``web`` line (uvicorn, WEB_CONCURRENCY=2, the
settings' PostgreSQL connection pool per process, production defaults everywhere: user throttle,
per-user job quotas) serves 64 keep-alive clients, one user each, every client in a loop of
``POST /api/v1/jobs/`` → ``GET /api/v1/jobs/{id}/`` → ``GET /api/v1/jobs/?page_size=50``. A
maintenance worker is not needed: created jobs stay pending (each user stays far below the
default 1,000 active jobs). Printed: requests/s and latency per operation, errors by status
(any status >= 400 or lost connection is an error), PostgreSQL's connections at the peak against
its ``max_connections`` (the web processes' connections to the benchmark's database). Exit 1 on any
error.

    python bench/capacity.py [--quick] [--clients 64] [--seconds 60]

Own database taskhub_bench_capacity, own Redis db 6.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common
from bench.api_load import CpuMeter, Stats

ENV = common.configure(database="taskhub_bench_capacity", redis_db=6)
JOB = {"name": "capacity", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
OPERATIONS = ("create", "detail", "list")


def make_user(username: str):
    """A user with the production defaults: no quota override, the default throttle."""
    from accounts.models import User

    user = User(username=username, email=f"{username}@bench.invalid")
    user.set_unusable_password()
    user.save()
    return user


def postgres_connections() -> tuple[int, int]:
    with common._admin_connection() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = %s"
        (used,) = conn.execute(query, [ENV.database]).fetchone()
        (limit,) = conn.execute("SHOW max_connections").fetchone()
    return used, int(limit)


async def run(port: int, tokens: list[str], seconds: float, meter: CpuMeter) -> tuple[dict[str, Stats], int]:
    from bench.http_client import Client

    clients = [Client(port, token=token) for token in tokens]
    stats = {name: Stats(name, len(clients)) for name in OPERATIONS}
    deadline = time.perf_counter() + seconds
    peak_connections = 0

    async def timed(name: str, client, method: str, path: str, body=None):
        started = time.perf_counter()
        try:
            response = await client.request(method, path, body)
        except Exception:  # noqa: BLE001 - a lost connection is an error of the run
            stats[name].statuses["lost"] += 1
            response = None
        else:
            stats[name].statuses[response.status] += 1
        stats[name].latencies.append(time.perf_counter() - started)
        return response

    async def loop(client) -> None:
        while time.perf_counter() < deadline:
            created = await timed("create", client, "POST", "/api/v1/jobs/", JOB)
            if created is not None and created.status == 201:
                await timed("detail", client, "GET", f"/api/v1/jobs/{created.json()['id']}/")
            await timed("list", client, "GET", "/api/v1/jobs/?page_size=50")

    async def watch_connections() -> None:
        nonlocal peak_connections
        while time.perf_counter() < deadline:
            used, _ = await asyncio.to_thread(postgres_connections)
            peak_connections = max(peak_connections, used)
            await asyncio.sleep(1.0)

    before = meter.snapshot()
    started = time.perf_counter()
    await asyncio.gather(watch_connections(), *(loop(client) for client in clients))
    elapsed = time.perf_counter() - started
    after = meter.snapshot()
    total = sum(s.requests for s in stats.values())
    for s in stats.values():
        s.elapsed = elapsed
        s.cpu_ms = meter.per_request(before, after, total)
    for client in clients:
        await client.close()
    return stats, peak_connections


def main() -> int:
    def options(parser) -> None:
        parser.add_argument("--clients", type=int, default=64)
        parser.add_argument("--seconds", type=float)

    args = common.parse_args(__doc__, options)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    with common.bench_environment(ENV):
        from rest_framework_simplejwt.tokens import RefreshToken

        tokens = [str(RefreshToken.for_user(make_user(f"capacity-{i}")).access_token) for i in range(args.clients)]
        port = common.free_port()
        print(f"# web: {common.procfile_command('web')} (WEB_CONCURRENCY=2, port {port}), production defaults")
        _, max_connections = postgres_connections()
        web = common.start_web(port, {"JWT_ACCESS_MINUTES": "120"})
        try:
            runner = uvloop.run if uvloop else asyncio.run
            stats, peak = runner(run(port, tokens, seconds, CpuMeter(web)))
        finally:
            web.stop()
            log = web.output()
            web.close()
        if "Traceback" in log:
            print(f"# the web processes logged errors:\n{log[-3000:]}", file=sys.stderr)

    common.print_table(
        f"API capacity: {args.clients} keep-alive clients (one user each) for {seconds:g} s, 2 web processes, "
        "each client create → detail → list in a loop",
        ["operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"],
        [
            [s.name, s.requests, s.rate, *(s.percentile(q) for q in (0.5, 0.95, 0.99)), s.percentile(1.0), s.errors]
            for s in stats.values()
        ],
    )
    errors = {s.name: {str(k): v for k, v in s.statuses.items() if k == "lost" or k >= 400} for s in stats.values()}
    total_errors = sum(s.errors for s in stats.values())
    total = sum(s.requests for s in stats.values())
    print(f"\n  errors by status: {errors if total_errors else 'none'}")
    print(f"  PostgreSQL client connections at the peak: {peak} of max_connections {max_connections}")
    print(
        f"\nratios: {args.clients} clients, {total} requests in {seconds:g} s ({total / seconds:.0f} req/s), "
        f"errors {total_errors}, peak PostgreSQL connections {peak}/{max_connections}"
    )
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
