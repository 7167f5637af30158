"""The stats rollup: jobs finished per minute, owner, queue and task (``JobStatsMinute``), which
``GET /api/v1/stats/`` reads instead of the job rows (jobs/observability/stats.py).

It is fed by the metrics pass (jobs/services/metrics.py), from the very rows that pass counts into
the metrics' totals, in the same statement and under the same cursor lock:

- A row re-read in the 5-minute window behind the watermark was already excluded by ``MetricSeen``
  before either count sees it, so it adds to its minute once.
- One pass at a time holds the cursor, so adding to the minute rows (``INSERT … ON CONFLICT DO
  UPDATE``, one statement per batch) cannot race another pass; ``stats_rollup_prune`` only deletes
  minutes far older than any pass writes.
- The first pass after the table appears (``MetricCursor.stats_since`` empty) builds it from the job
  rows of the last day that the pass had counted or will never count (behind its watermark), so the
  stats show a whole day at once instead of filling up over a day.

Both count in the database with the one statement of ``stats_rollup_add_sql``: a day of rows (up to
millions) never goes through Python.

A job that an operator retries and that finishes again counts once per finish, as in /metrics; a job
deleted later stays counted (retention cannot rewrite what finished in a minute).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from ..models import STATS_RUN_BOUNDS, STATS_RUN_FIELDS, TERMINAL_STATUSES, JobStatsMinute

# What the stats show (a day), and a margin for a pass that runs late; older minutes are pruned.
STATS_WINDOW = timedelta(days=1)
STATS_KEEP = STATS_WINDOW + timedelta(hours=1)

COUNT_FIELDS = (*(str(status) for status in TERMINAL_STATUSES), *STATS_RUN_FIELDS)
RUN_RANGE_FIELDS = ("run_min", "run_max")
# The run bounds negated and in ascending order, for width_bucket (see stats_rollup_add_sql).
_NEGATED_BOUNDS = [-float(bound) for bound in reversed(STATS_RUN_BOUNDS[:-1])]


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def stats_rollup_add_sql(rows: str) -> tuple[str, dict[str, Any]]:
    """One ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` that adds the finished jobs of the
    relation ``rows`` (a CTE of the caller's statement) to their minute rows, and its parameters.

    ``rows`` has the columns ``at`` (finished_at), ``owner_id``, ``queue``, ``task``, ``status``
    and ``run`` (seconds, NULL when the job did not run this round: jobs/services/metrics.py).
    A run counts in the bucket of the first bound at or above it, as /metrics counts it:
    ``width_bucket`` over the negated bounds is the number of bounds >= the run, so the bucket's
    number (from 1) is the bounds' count + 1 minus it (the last, past every bound, when none is)."""
    table = JobStatsMinute._meta.db_table
    columns = ("minute", "owner_id", "queue", "task", *COUNT_FIELDS, *RUN_RANGE_FIELDS)
    quote = connection.ops.quote_name
    statuses = [f"count(*) FILTER (WHERE status = '{status}')" for status in TERMINAL_STATUSES]
    buckets = [f"count(*) FILTER (WHERE bucket = {index})" for index in range(1, len(STATS_RUN_FIELDS) + 1)]
    counts = ", ".join((*statuses, *buckets))
    added = ", ".join(f"{quote(f)} = {table}.{quote(f)} + EXCLUDED.{quote(f)}" for f in COUNT_FIELDS)
    sql = f"""
        INSERT INTO {table} ({", ".join(quote(column) for column in columns)})
        SELECT date_trunc('minute', at, 'UTC'), owner_id, queue, task, {counts},
               make_interval(secs => min(run)), make_interval(secs => max(run))
        FROM (
            SELECT at, owner_id, queue, task, status, run,
                   %(stats_buckets)s - width_bucket(-run, %(stats_bounds)s::float8[]) AS bucket
            FROM {rows}
        ) AS bucketed
        GROUP BY 1, 2, 3, 4
        ON CONFLICT (minute, owner_id, queue, task) DO UPDATE SET {added},
            run_min = LEAST({table}.run_min, EXCLUDED.run_min),
            run_max = GREATEST({table}.run_max, EXCLUDED.run_max)
    """
    return sql, {"stats_buckets": len(STATS_RUN_BOUNDS), "stats_bounds": _NEGATED_BOUNDS}


def stats_rollup_build(rows_sql: str, params: dict[str, Any]) -> int:
    """Replace the table with the finished jobs that ``rows_sql`` selects (with the columns of
    ``stats_rollup_add_sql``'s ``rows``) counted per minute, in one statement (the first pass: a day
    of rows, up to millions, never through Python). The caller holds the metrics cursor of
    finished jobs. Returns the number of minute rows."""
    insert, insert_params = stats_rollup_add_sql("rows")
    JobStatsMinute.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(f"WITH rows AS ({rows_sql}) {insert}", {**params, **insert_params})
        return cursor.rowcount


def stats_rollup_prune(*, now: datetime) -> int:
    """Delete the minutes older than the stats show (a day) and a margin; how many rows went."""
    deleted, _ = JobStatsMinute.objects.filter(minute__lt=minute_of(now - STATS_KEEP)).delete()
    return deleted
