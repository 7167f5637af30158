#!/usr/bin/env python
"""The job list over HTTP at 10,000 and at 1,000,000 jobs: does a page cost the same?

The web process runs exactly as the Procfile starts it. One keep-alive client (one user, a JWT
bearer token) reads ``GET /api/v1/jobs/?page_size=50`` (newest first: the first page) and the
page 20 ``next`` links deep, 300 times each, round-robin, at 10,000 jobs of that user; then the
table grows to 1,000,000 jobs (older ones, so the pages show the same rows) and the same is
measured again, with the web processes' CPU per request (/proc: what the page costs the server,
which moves much less with a busy machine than its time). Rows are written by one
``INSERT … SELECT generate_series`` per batch, every column from the model's own defaults (finished
jobs with a small result), then ``VACUUM ANALYZE``.

Own database taskhub_bench_list, own Redis db 4.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_list", redis_db=4)

PAGE = "/api/v1/jobs/?page_size=50"
DEPTH = 20
BATCH = 250_000


def insert_jobs(
    owner_id: int,
    first: int,
    count: int,
    *,
    start: str = "2026-01-01T00:00:00+00:00",
    overrides: dict[str, str] | None = None,
) -> None:
    """Jobs number first .. first+count-1, job n created n milliseconds before ``start`` (newest first).

    ``overrides``: SQL expressions (of ``n``) for columns, over the finished jobs written by default.
    """
    from django.db import connection
    from django.db.models import NOT_PROVIDED

    from jobs.models import Job

    overrides = {
        "id": "gen_random_uuid()",
        "owner_id": "%(owner)s",
        "name": "'bench ' || n",
        "celery_task_name": "'jobs.tasks.common_tasks.long_running_task'",
        "kwargs": """'{"seconds": 0}'::jsonb""",
        "queue": "'default'",
        "status": "'succeeded'",
        "progress": "100",
        "result": """'{"seconds": 0, "labels": {}, "elapsed": 0.001}'::jsonb""",
        "created_at": "%(start)s::timestamptz - n * interval '1 millisecond'",
        "dispatched_at": "%(start)s::timestamptz - n * interval '1 millisecond'",
        "started_at": "%(start)s::timestamptz - n * interval '1 millisecond' + interval '10 ms'",
        "finished_at": "%(start)s::timestamptz - n * interval '1 millisecond' + interval '20 ms'",
        "heartbeat_at": "%(start)s::timestamptz - n * interval '1 millisecond' + interval '20 ms'",
        "worker": "'bench@host:1'",
        **(overrides or {}),
    }
    columns, values, params = [], [], {"owner": owner_id, "start": start}
    for field in Job._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in overrides:
            values.append(overrides[field.attname])
        elif field.null:
            values.append("NULL")
        elif field.default is not NOT_PROVIDED:
            default = field.default() if callable(field.default) else field.default
            name = f"default_{field.attname}"
            params[name] = json.dumps(default) if field.get_internal_type() == "JSONField" else default
            values.append(f"%({name})s" + ("::jsonb" if field.get_internal_type() == "JSONField" else ""))
        else:
            raise SystemExit(f"no value for {field.attname}")
    sql = (
        f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(%(first)s, %(last)s) AS n"
    )
    with connection.cursor() as cursor:
        for start in range(first, first + count, BATCH):
            cursor.execute(sql, {**params, "first": start, "last": min(first + count, start + BATCH) - 1})


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_job")


async def measure(port: int, token: str, rounds: int) -> dict[str, list[float]]:
    from bench.http_client import Client

    client = Client(port, token=token)
    path = PAGE
    for _ in range(DEPTH):  # the cursor of the page DEPTH links deep
        page = (await client.request("GET", path)).json()
        next_url = urlsplit(page["next"])
        path = f"{next_url.path}?{next_url.query}"
    paths = {"first page": PAGE, f"page {DEPTH + 1} (cursor)": path}
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for round_number in range(rounds + 10):
        for name, path in paths.items():
            started = time.perf_counter()
            response = await client.request("GET", path)
            elapsed = time.perf_counter() - started
            if response.status != 200 or len(response.json()["results"]) != 50:
                raise SystemExit(f"GET {path} answered {response.status}: {response.body[:300]!r}")
            if round_number >= 10:  # the first rounds warm the web processes up
                timings[name].append(elapsed)
    await client.close()
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    args = common.parse_args(__doc__)
    small, large = 10_000, (100_000 if args.quick else 1_000_000)
    rounds = 100 if args.quick else 300
    results, web_cpu = {}, {}
    with common.bench_environment(ENV):
        from rest_framework_simplejwt.tokens import RefreshToken

        user = common.make_user("bench-list")
        token = str(RefreshToken.for_user(user).access_token)
        port = common.free_port()
        web = common.start_web(port, {"JWT_ACCESS_MINUTES": "120", "THROTTLE_USER": "100000000/min"})
        try:
            filled = 0
            for size in (small, large):
                started = time.perf_counter()
                insert_jobs(user.id, filled, size - filled)
                vacuum()
                print(f"# {size:,} jobs: {size - filled:,} written in {time.perf_counter() - started:.1f}s")
                filled = size
                print(f"# load average: {common.load_average()}")
                cpu_before = sum(common.cpu_seconds(web.pids()).values())
                results[size] = asyncio.run(measure(port, token, rounds))
                requests = DEPTH + 2 * (rounds + 10)  # the cursor's walk, then both pages (warm-up included)
                web_cpu[size] = (sum(common.cpu_seconds(web.pids()).values()) - cpu_before) / requests * 1000
                print(f"# {size:,} jobs: web CPU {web_cpu[size]:.2f} ms per request (/proc, both web processes)")
        finally:
            web.stop()
            web.close()

    rows = []
    for size, timings in results.items():
        for name, values in timings.items():
            rows.append([f"{size:,} jobs, {name}", len(values), *(percentile(values, q) for q in (0.5, 0.95, 0.99))])
    common.print_table(
        "GET /api/v1/jobs/?page_size=50, one keep-alive client, 2 web processes (Procfile)",
        ["table, page", "requests", "p50 ms", "p95 ms", "p99 ms"],
        rows,
    )
    first = {size: percentile(timings["first page"], 0.99) for size, timings in results.items()}
    medians = {size: statistics.median(timings["first page"]) * 1000 for size, timings in results.items()}
    print(f"# load average at the end: {common.load_average()}")
    print(
        f"\nratios: first page p99 at {large:,} / {small:,} jobs = {first[large] / first[small]:.2f}x "
        f"({first[large]:.1f} vs {first[small]:.1f} ms; issue 20's target: <= 10 ms at 1,000,000 jobs, "
        f"{'met' if first[large] <= 10 else 'missed'}); "
        f"median {medians[large]:.1f} vs {medians[small]:.1f} ms; web CPU per request "
        f"{web_cpu[large]:.2f} vs {web_cpu[small]:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
