#!/usr/bin/env python
"""A /metrics scrape, an argument search and the stats over HTTP at 1,000,000 jobs (target: < 200 ms each).

The web process runs exactly as the Procfile starts it (2 web processes, as the other API
benchmarks). The table holds 1,000,000 finished jobs of the last day (bench/list_scale.py's fill:
one ``INSERT … SELECT generate_series`` per batch; each job's kwargs name one of 10,000 customers,
100 jobs each), owned by 10 users (100,000 each), of 4 tasks on the 3 queues, runs of 0 to 3.6 s;
plus what a busy system has at any moment: 10,000 pending jobs in a backlog, 20 running, 3,000 jobs
finished in the last five minutes and four worker processes alive. Then ``VACUUM ANALYZE``, and the
first pass of the metrics rollup in-process (it counts the 3,000 recent jobs and builds the stats'
per-minute rollup from the day's rows, as the first pass after a deployment does; reported apart).

Measured, one keep-alive client each, after a warm-up:

- ``GET /metrics`` with ``Authorization: Bearer <METRICS_TOKEN>`` (Prometheus' way): each scrape
  re-reads the last five minutes behind the watermark.
- ``GET /api/v1/jobs/?kwarg=customer:<value>`` (a staff JWT: all 1,000,000 jobs): a search by a
  keyword argument (100 matches, the first page of 50). The filter comes with the argument search
  (issue 11); until it is there the API answers 400 and the figure is reported as missing.
- ``GET /api/v1/stats/`` as staff (all 1,000,000 jobs of the day: 86,400 rollup rows, 60 owner,
  queue and task combinations a minute) and as one of the 10 users (100,000 jobs of the day).

Own database taskhub_bench_observability, own Redis db 5.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common
from bench import list_scale

ENV = common.configure(database="taskhub_bench_observability", redis_db=5)

METRICS_TOKEN = "bench-metrics-token-0123456789abcdef"
CUSTOMERS = 10_000
OWNERS = 10
TASKS = (
    "jobs.tasks.common_tasks.long_running_task",
    "jobs.tasks.common_tasks.process_data",
    "jobs.tasks.common_tasks.flaky_task",
    "jobs.tasks.high_priority_tasks.send_notification",
)
QUEUES = ("high_priority", "default", "low_priority")


def fill(owner_ids: list[int], total: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from jobs.models import WorkerHeartbeat

    now = timezone.now()
    owner_id = owner_ids[0]
    customer = {
        "kwargs": f"jsonb_build_object('seconds', 0, 'customer', 'customer-' || (n %% {CUSTOMERS}))",
        "owner_id": f"(ARRAY{owner_ids})[1 + n %% {len(owner_ids)}]",
        "celery_task_name": f"(ARRAY{list(TASKS)})[1 + n %% {len(TASKS)}]",
        "queue": f"(ARRAY{list(QUEUES)})[1 + n %% {len(QUEUES)}]",
    }
    # The bulk: finished jobs of the last day, before the last five minutes.
    list_scale.insert_jobs(owner_id, 0, total, overrides=_spread(customer))
    recent = {
        **customer,
        "status": "(ARRAY['succeeded','succeeded','succeeded','failed','revoked'])[1 + n %% 5]",
        "error_type": "CASE WHEN n %% 5 = 3 THEN 'ValueError' ELSE '' END",
        "created_at": "now() - (n %% 300) * interval '1 second' - interval '2 seconds'",
        "dispatched_at": "now() - (n %% 300) * interval '1 second' - interval '2 seconds'",
        "started_at": "now() - (n %% 300) * interval '1 second' - interval '1 second'",
        "finished_at": "now() - (n %% 300) * interval '1 second'",
        "heartbeat_at": "now() - (n %% 300) * interval '1 second'",
    }
    list_scale.insert_jobs(owner_id, total, 3_000, overrides=recent)
    pending = {
        **customer,
        "status": "'pending'",
        "progress": "0",
        "result": "NULL",
        "created_at": "now() - n * interval '10 ms'",
        "dispatched_at": "now() - n * interval '10 ms'",
        "started_at": "NULL",
        "finished_at": "NULL",
        "heartbeat_at": "NULL",
        "worker": "''",
    }
    list_scale.insert_jobs(owner_id, total + 3_000, 10_000, overrides=pending)
    running = {
        **pending,
        "status": "'running'",
        "started_at": "now()",
        "heartbeat_at": "now()",
        "worker": "'bench@host:' || (n %% 4)",
    }
    list_scale.insert_jobs(owner_id, total + 13_000, 20, overrides=running)
    for pid in range(4):
        WorkerHeartbeat.objects.create(
            hostname="bench@host", pid=pid, queues=["default"], started_at=now, last_seen=now
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_job")
        print(f"# {cursor.fetchone()[0]:,} jobs in the table")


def _spread(overrides: dict[str, str]) -> dict[str, str]:
    """Job n finished 6 minutes + 86n ms ago (1,000,000 jobs over the 23.9 hours before that), after
    a run of (n mod 97) * 37 ms."""
    at = "now() - interval '6 minutes' - n * 86 * interval '1 ms'"
    started = f"{at} - (n %% 97) * 37 * interval '1 ms'"
    return {
        **overrides,
        "status": "(ARRAY['succeeded','succeeded','succeeded','failed','revoked'])[1 + n %% 5]",
        "created_at": f"{started} - interval '30 ms'",
        "dispatched_at": f"{started} - interval '30 ms'",
        "started_at": started,
        "finished_at": at,
        "heartbeat_at": at,
    }


def first_pass() -> float:
    """The first pass of the rollup (in-process): builds the stats' minutes from the day's rows."""
    from jobs.models import JobStatsMinute
    from jobs.services.metrics import metrics_advance

    started = time.perf_counter()
    counted = metrics_advance(until_done=True)
    elapsed = time.perf_counter() - started
    print(f"# first rollup pass: {elapsed:.1f}s ({counted}; {JobStatsMinute.objects.count():,} stats minute rows)")
    return elapsed


async def measure(port: int, token: str, user_token: str, rounds: int) -> dict[str, list[float] | str]:
    from bench.http_client import Client

    scraper = Client(port, token=METRICS_TOKEN)
    api = Client(port, token=token)
    user_api = Client(port, token=user_token)
    timings: dict[str, list[float] | str] = {}

    response = await scraper.request("GET", "/metrics")
    if response.status != 200 or b"taskhub_jobs_finished_total" not in response.body:
        raise SystemExit(f"GET /metrics answered {response.status}: {response.body[:300]!r}")

    async def timed(name: str, client: Client, path_of, check, count: int = rounds) -> None:
        values = []
        for index in range(count + 5):
            path = path_of(index)
            started = time.perf_counter()
            response = await client.request("GET", path)
            elapsed = time.perf_counter() - started
            problem = check(response)
            if problem:
                timings[name] = problem
                return
            if index >= 5:  # warm-up
                values.append(elapsed)
        timings[name] = values

    await timed(
        "/metrics (steady)",
        scraper,
        lambda i: "/metrics",
        lambda r: None if r.status == 200 else f"answered {r.status}: {r.body[:200]!r}",
    )

    def search_check(response):
        if response.status == 400:
            return f"not measured: the API has no kwarg filter yet (400: {response.json().get('message', '')[:120]})"
        if response.status != 200:
            return f"answered {response.status}: {response.body[:200]!r}"
        results = response.json()["results"]
        customers = {job["kwargs"].get("customer") for job in results}
        if len(customers) > 1:
            return "not measured: the API ignores ?kwarg= (no argument filter yet)"
        if len(results) != 50:
            return f"wrong answer: {len(results)} jobs"
        return None

    await timed(
        "/api/v1/jobs/?kwarg=customer:<one of 10,000>",
        api,
        lambda i: f"/api/v1/jobs/?kwarg=customer:customer-{(i * 7919) % CUSTOMERS}",
        search_check,
    )

    def stats_check(finished: int):
        def check(response):
            if response.status != 200:
                return f"answered {response.status}: {response.body[:200]!r}"
            if response.json()["last_day"]["finished"] < finished:
                return f"wrong answer: {response.json()['last_day']['finished']:,} finished in the last day"
            return None

        return check

    await timed("/api/v1/stats/ (staff: every job)", api, lambda i: "/api/v1/stats/", stats_check(TOTAL[0]))
    await timed(
        "/api/v1/stats/ (one of 10 users)", user_api, lambda i: "/api/v1/stats/", stats_check(TOTAL[0] // OWNERS)
    )
    await scraper.close()
    await api.close()
    await user_api.close()
    return timings


TOTAL = [0]  # the bulk's size, for the stats' check


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    args = common.parse_args(__doc__)
    total = 100_000 if args.quick else 1_000_000
    rounds = 50 if args.quick else 200
    with common.bench_environment(ENV):
        from rest_framework_simplejwt.tokens import RefreshToken

        user = common.make_user("bench-observability", is_staff=True)
        owners = [common.make_user(f"bench-observability-{i}") for i in range(OWNERS)]
        token = str(RefreshToken.for_user(user).access_token)
        user_token = str(RefreshToken.for_user(owners[0]).access_token)
        started = time.perf_counter()
        TOTAL[0] = total
        fill([owner.id for owner in owners], total)
        list_scale.vacuum()
        print(f"# filled and analyzed in {time.perf_counter() - started:.1f}s; load average: {common.load_average()}")
        first = first_pass()
        port = common.free_port()
        web = common.start_web(
            port, {"JWT_ACCESS_MINUTES": "120", "THROTTLE_USER": "100000000/min", "METRICS_TOKEN": METRICS_TOKEN}
        )
        try:
            timings = asyncio.run(measure(port, token, user_token, rounds))
        finally:
            web.stop()
            web.close()

    rows, verdicts = [["first rollup pass (in-process: builds the stats' minutes)", 1, first * 1000, "", ""]], []
    for name, values in timings.items():
        if isinstance(values, str):
            rows.append([name, 0, values, "", ""])
            continue
        rows.append([name, len(values), ms(values, 0.5), ms(values, 0.95), max(values) * 1000])
        verdicts.append(f"{name} p50 {ms(values, 0.5):.1f} ms, p95 {ms(values, 0.95):.1f} ms")
    common.print_table(
        f"{total:,} jobs, one keep-alive client each, 2 web processes (Procfile)",
        ["request", "requests", "p50 ms", "p95 ms", "max ms"],
        rows,
    )
    print(f"\nratios: {'; '.join(verdicts)} (target < 200 ms each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
