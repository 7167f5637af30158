#!/usr/bin/env python
"""The metrics pass (beat's ``rollup_metrics``) over a backlog of 1,000,000 finished jobs (target: <= 2 minutes).

The table is filled with 1,000,000 finished jobs (bench/list_scale.py's fill: one ``INSERT … SELECT
generate_series`` per batch), owned by 10 users, of 4 tasks on the 3 queues, succeeded, failed and
revoked, runs of 0 to 3.6 s, finished 0.5 ms apart (2,000 jobs/s, about 10x the end-to-end
throughput of taskhub in bench/README: 8.3 minutes of them, so about 600,000 lie in the 5 minutes
that each batch re-reads behind the watermark), up to a second ago; then ``VACUUM ANALYZE``. The
rollup's cursors stand before the first of them, and the stats' rollup exists: the pass counts every
row into the /metrics totals and the stats' minutes, as beat's task does after a burst (or after an
outage of the maintenance worker).

Measured in-process: ``metrics_advance(until_done=True)``, wall time, the statements it sent, this
process' CPU and its PostgreSQL backend's CPU; then the figures are checked against the rows (the
finished total and the stats' minutes each add up to the rows), and a second pass (nothing new) is
timed. To compare with another commit, run the script from a checkout of that commit (the
``--rows`` option makes a smaller backlog for a slow one): the old path is not kept in the app.

Own database taskhub_bench_metrics (``BENCH_METRICS_DATABASE=taskhub_bench_<name>`` picks another, for
two runs at once), own Redis db 5.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common
from bench import list_scale

ENV = common.configure(database=os.environ.get("BENCH_METRICS_DATABASE", "taskhub_bench_metrics"), redis_db=5)

OWNERS = 10
TASKS = (
    "jobs.tasks.common_tasks.long_running_task",
    "jobs.tasks.common_tasks.process_data",
    "jobs.tasks.common_tasks.flaky_task",
    "jobs.tasks.high_priority_tasks.send_notification",
)
QUEUES = ("high_priority", "default", "low_priority")
SPACING_MS = 0.5  # 2,000 finished jobs a second


def fill(owner_ids: list[int], total: int) -> None:
    """Job n finished 1 s + n * SPACING_MS ago, after a wait of 30 ms and a run of (n mod 97) * 37 ms."""
    at = f"now() - interval '1 second' - n * {SPACING_MS} * interval '1 ms'"
    started = f"{at} - (n %% 97) * 37 * interval '1 ms'"
    overrides = {
        "owner_id": f"(ARRAY{owner_ids})[1 + n %% {len(owner_ids)}]",
        "celery_task_name": f"(ARRAY{list(TASKS)})[1 + n %% {len(TASKS)}]",
        "queue": f"(ARRAY{list(QUEUES)})[1 + n %% {len(QUEUES)}]",
        "status": "(ARRAY['succeeded','succeeded','succeeded','failed','revoked'])[1 + n %% 5]",
        "error_type": "CASE WHEN n %% 5 = 3 THEN (ARRAY['ValueError','KeyError'])[1 + n %% 2] ELSE '' END",
        "created_at": f"{started} - interval '30 ms'",
        "dispatched_at": f"{started} - interval '30 ms'",
        "started_at": started,
        "finished_at": at,
        "heartbeat_at": at,
    }
    list_scale.insert_jobs(owner_ids[0], 0, total, overrides=overrides)


def stand_before_the_rows() -> None:
    """The rollup has counted everything before the rows (its cursors), and the stats' rollup exists."""
    from django.db.models import Min

    from jobs.models import Job, MetricCursor

    first = Job.objects.aggregate(first=Min("finished_at"))["first"]
    for source in ("jobs", "retries"):
        MetricCursor.objects.create(source=source, watermark=first - timedelta(seconds=1), stats_since=first)


def measured_pass() -> dict[str, float | int | dict]:
    """One ``metrics_advance(until_done=True)``: its answer, wall seconds, statements and CPU."""
    from django.db import connection

    from jobs.services.metrics import metrics_advance

    statements = [0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    postgres_before = common.cpu_seconds([backend]).get(backend, 0.0)
    process_before = time.process_time()
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        counted = metrics_advance(until_done=True)
    elapsed = time.perf_counter() - started
    return {
        "counted": counted,
        "seconds": elapsed,
        "statements": statements[0],
        "process_cpu": time.process_time() - process_before,
        "postgres_cpu": common.cpu_seconds([backend]).get(backend, 0.0) - postgres_before,
    }


def check(total: int) -> str:
    """The totals and the stats' minutes each add up to the rows (or say what is wrong)."""
    from django.db.models import Sum

    from jobs.models import JobStatsMinute, MetricTotal

    finished = MetricTotal.objects.filter(metric="finished").aggregate(sum=Sum("value"))["sum"] or 0
    minutes = JobStatsMinute.objects.aggregate(s=Sum("succeeded"), f=Sum("failed"), r=Sum("revoked"))
    in_minutes = sum(value or 0 for value in minutes.values())
    if int(finished) != total or in_minutes != total:
        return f"WRONG: {int(finished):,} in the finished total, {in_minutes:,} in the stats' minutes, of {total:,}"
    return f"checked: {total:,} in the finished total and in the stats' minutes"


def main() -> int:
    def extra(parser):
        parser.add_argument("--rows", type=int, default=None, help="finished jobs to count (default 1,000,000)")

    args = common.parse_args(__doc__, extra)
    total = args.rows or (100_000 if args.quick else 1_000_000)
    with common.bench_environment(ENV):
        owners = [common.make_user(f"bench-metrics-{i}") for i in range(OWNERS)]
        started = time.perf_counter()
        fill([owner.id for owner in owners], total)
        list_scale.vacuum()
        stand_before_the_rows()
        print(
            f"# {total:,} finished jobs filled and analyzed in {time.perf_counter() - started:.1f}s; "
            f"load average: {common.load_average()}"
        )
        first = measured_pass()
        verdict = check(total)
        again = measured_pass()
        print(f"# {verdict}; load average: {common.load_average()}")

    rows = []
    for name, run in (("backlog", first), ("again (nothing new)", again)):
        counted = sum(run["counted"].values())
        rate = counted / run["seconds"] if counted else 0
        rows.append(
            [
                name,
                counted,
                run["seconds"],
                f"{rate:,.0f}",
                run["statements"],
                f"{run['statements'] / (counted / 10_000):.2f}" if counted else "",
                run["process_cpu"],
                run["postgres_cpu"],
            ]
        )
    common.print_table(
        f"metrics_advance(until_done=True) over {total:,} finished jobs (2,000 a second, up to a second ago)",
        ["pass", "rows counted", "wall s", "rows/s", "statements", "per 10,000 rows", "python CPU s", "PG CPU s"],
        rows,
    )
    print(
        f"\nratios: metrics pass counted {sum(first['counted'].values()):,} rows in {first['seconds']:.1f} s "
        f"({sum(first['counted'].values()) / first['seconds']:,.0f} rows/s, {first['statements']} statements; "
        f"target: 1,000,000 in <= 120 s); {verdict}"
    )
    return 0 if verdict.startswith("checked") else 1


if __name__ == "__main__":
    sys.exit(main())
