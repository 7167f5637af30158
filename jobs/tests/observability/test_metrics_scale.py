"""The metrics pass at scale: 200,000 finished rows (one ``INSERT … SELECT generate_series``) counted
by beat's pass in a bounded number of statements, with the same figures a direct count of the rows
gives (the /metrics totals and the stats' minute rows), and counted once however often it runs.

The bound is a count of statements per 10,000 rows, which the machine's noise does not move (a
wall-clock bound would): the pass counts in the database, one ``GROUP BY`` per batch."""

import json
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import NOT_PROVIDED, Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import (
    METRIC_BUCKETS,
    STATS_RUN_BOUNDS,
    STATS_RUN_FIELDS,
    Job,
    JobStatsMinute,
    MetricCursor,
    MetricSeen,
    MetricTotal,
)
from jobs.services.metrics import LATE, metrics_advance

pytestmark = pytest.mark.django_db

ROWS = 200_000
STATEMENTS_PER_10000_ROWS = 10
TASKS = ("jobs.tasks.common_tasks.long_running_task", "jobs.tasks.common_tasks.process_data")
QUEUES = ("default", "low_priority", "high_priority")
STATUSES = ("succeeded", "succeeded", "failed", "revoked")
ERRORS = ("ValueError", "KeyError")
SPACING_MS = 18  # 200,000 rows over the hour before now: about 16,700 in the 5-minute re-read window


def insert_finished(owner_id: int, count: int) -> None:
    """Job n (0 .. count-1) finished ``1 s + n * SPACING_MS`` ago after waiting 30 ms and running
    (n mod 97) * 37 ms; its task, queue and status cycle through the lists above."""
    now = timezone.now()
    finished = f"%(now)s::timestamptz - interval '1 second' - n * {SPACING_MS} * interval '1 ms'"
    started = f"({finished}) - (n %% 97) * 37 * interval '1 ms'"
    overrides = {
        "id": "gen_random_uuid()",
        "owner_id": "%(owner)s",
        "name": "'scale ' || n",
        "celery_task_name": f"(ARRAY{list(TASKS)})[1 + n %% {len(TASKS)}]",
        "queue": f"(ARRAY{list(QUEUES)})[1 + n %% {len(QUEUES)}]",
        "status": f"(ARRAY{list(STATUSES)})[1 + n %% {len(STATUSES)}]",
        "error_type": f"CASE WHEN n %% {len(STATUSES)} = 2 THEN (ARRAY{list(ERRORS)})[1 + n %% 2] ELSE '' END",
        "created_at": f"({started}) - interval '30 ms'",
        "dispatched_at": f"({started}) - interval '30 ms'",
        "started_at": started,
        "finished_at": finished,
    }
    columns, values, params = [], [], {"owner": owner_id, "now": now, "count": count}
    for field in Job._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in overrides:
            values.append(overrides[field.attname])
        elif field.null:
            values.append("NULL")
        else:
            assert field.default is not NOT_PROVIDED, field.attname
            default = field.default() if callable(field.default) else field.default
            params[field.attname] = json.dumps(default) if field.get_internal_type() == "JSONField" else default
            values.append(f"%({field.attname})s" + ("::jsonb" if field.get_internal_type() == "JSONField" else ""))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM generate_series(0, %(count)s - 1) AS n",
            params,
        )


def bucket(seconds: float, bounds) -> int:
    return next(index for index, bound in enumerate(bounds) if seconds <= bound)


def expected(count: int) -> dict:
    """What the pass must count, from the rows' recipe (not from the rows)."""
    finished, failures, runs, waits = Counter(), Counter(), Counter(), Counter()
    stats_runs = Counter()
    for n in range(count):
        task, queue, status = TASKS[n % len(TASKS)], QUEUES[n % len(QUEUES)], STATUSES[n % len(STATUSES)]
        finished[task, queue, status] += 1
        if status == "failed":
            failures[task, ERRORS[n % 2]] += 1
        run = (n % 97) * 37 / 1000
        runs[task, bucket(run, (*METRIC_BUCKETS["run_seconds"], float("inf")))] += 1
        waits[task, bucket(0.03, (*METRIC_BUCKETS["wait_seconds"], float("inf")))] += 1
        stats_runs[STATS_RUN_FIELDS[bucket(run, STATS_RUN_BOUNDS)]] += 1
    return {"finished": finished, "failures": failures, "runs": runs, "waits": waits, "stats_runs": stats_runs}


def totals(metric: str) -> dict:
    return {
        (row.task, row.queue, row.status, row.label): row.value for row in MetricTotal.objects.filter(metric=metric)
    }


def test_beat_pass_counts_200000_finished_rows_in_a_bounded_number_of_statements(user):
    before = timezone.now() - timedelta(hours=2)
    # The rollup exists and has counted everything before the hour the rows finished in.
    for source in ("jobs", "retries"):
        MetricCursor.objects.create(source=source, watermark=before, stats_since=before - timedelta(days=1))
    insert_finished(user.id, ROWS)

    with CaptureQueriesContext(connection) as queries:
        counted = metrics_advance(until_done=True)
    assert counted == {"jobs": ROWS, "retries": 0}
    per_10000 = len(queries) / (ROWS / 10_000)
    assert per_10000 <= STATEMENTS_PER_10000_ROWS, (
        f"{len(queries)} statements for {ROWS:,} rows: {per_10000:.1f} per 10,000 rows "
        f"(at most {STATEMENTS_PER_10000_ROWS})"
    )

    want = expected(ROWS)
    labels = ["+Inf" if b == float("inf") else format(b, "g") for b in (*METRIC_BUCKETS["run_seconds"], float("inf"))]
    wait_labels = [
        "+Inf" if b == float("inf") else format(b, "g") for b in (*METRIC_BUCKETS["wait_seconds"], float("inf"))
    ]
    assert totals("finished") == {(t, q, s, ""): float(c) for (t, q, s), c in want["finished"].items()}
    assert totals("failures") == {(t, "", "", e): float(c) for (t, e), c in want["failures"].items()}
    assert totals("run_seconds_bucket") == {(t, "", "", labels[i]): float(c) for (t, i), c in want["runs"].items()}
    assert totals("wait_seconds_bucket") == {
        (t, "", "", wait_labels[i]): float(c) for (t, i), c in want["waits"].items()
    }
    run_sum = sum((n % 97) * 37 / 1000 for n in range(ROWS))
    assert sum(totals("run_seconds_sum").values()) == pytest.approx(run_sum, rel=1e-9)
    assert sum(totals("wait_seconds_sum").values()) == pytest.approx(0.03 * ROWS, rel=1e-9)

    fields = ("succeeded", "failed", "revoked", *STATS_RUN_FIELDS)
    minutes = JobStatsMinute.objects.aggregate(**{field: Sum(field) for field in fields})
    statuses = Counter(STATUSES[n % len(STATUSES)] for n in range(ROWS))
    assert {s: minutes[s] for s in ("succeeded", "failed", "revoked")} == dict(statuses)
    assert {f: minutes[f] for f in STATS_RUN_FIELDS if minutes[f]} == dict(want["stats_runs"])

    # Only the rows the next pass re-reads (the 5 minutes behind the watermark) are remembered.
    watermark = MetricCursor.objects.get(source="jobs").watermark
    in_window = Job.objects.filter(finished_at__gt=watermark - LATE).count()
    assert MetricSeen.objects.filter(source="jobs").count() == in_window

    # Passes again (beat's, a scrape's, the stats'): nothing is counted twice.
    assert metrics_advance(until_done=True) == {"jobs": 0, "retries": 0}
    assert metrics_advance() == {"jobs": 0, "retries": 0}
    assert metrics_advance(stats_only=True) == {"jobs": 0}
    assert sum(totals("finished").values()) == ROWS
    assert sum(JobStatsMinute.objects.values_list("succeeded", flat=True)) == statuses["succeeded"]
