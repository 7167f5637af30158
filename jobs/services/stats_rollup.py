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

On PostgreSQL both count in the database with the one statement of ``stats_rollup_add_sql``: a day
of rows (up to millions) never goes through Python. On SQLite (the embedded default: one host, few
jobs) the pass adds its rows up in Python (``StatsRollup``) and writes them through the ORM.

A job that an operator retries and that finishes again counts once per finish, as in /metrics; a job
deleted later stays counted (retention cannot rewrite what finished in a minute).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from ..models import STATS_RUN_BOUNDS, STATS_RUN_FIELDS, TERMINAL_STATUSES, JobStatsMinute

# What the stats show (a day), and a margin for a pass that runs late; older minutes are pruned.
STATS_WINDOW = timedelta(days=1)
STATS_KEEP = STATS_WINDOW + timedelta(hours=1)

Key = tuple[datetime, int, str, str]
COUNT_FIELDS = (*(str(status) for status in TERMINAL_STATUSES), *STATS_RUN_FIELDS)
RUN_RANGE_FIELDS = ("run_min", "run_max")
# The run bounds negated and in ascending order, for width_bucket (see stats_rollup_add_sql).
_NEGATED_BOUNDS = [-float(bound) for bound in reversed(STATS_RUN_BOUNDS[:-1])]


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def run_field(seconds: float) -> str:
    """The column of the bucket that holds a run of ``seconds`` (as /metrics: the first bound >= it)."""
    return next(field for bound, field in zip(STATS_RUN_BOUNDS, STATS_RUN_FIELDS, strict=True) if seconds <= bound)


class StatsRollup:
    """The ORM path (SQLite) of ``stats_rollup_add_sql``: increments per minute, owner, queue and
    task, added up in Python and applied to ``JobStatsMinute`` at once."""

    def __init__(self) -> None:
        self.counts: dict[Key, Counter] = defaultdict(Counter)
        self.runs: dict[Key, tuple[timedelta, timedelta]] = {}  # the shortest and longest run per key

    def add(self, *, at: datetime, owner_id: int, queue: str, task: str, status: str, run: float | None) -> None:
        """One finished job (a row of the metrics pass) and its run time (None: it did not run)."""
        key = (minute_of(at), owner_id, queue, task)
        counts = self.counts[key]
        counts[status] += 1
        if run is not None:
            counts[run_field(run)] += 1
            self.runs[key] = _widen(self.runs.get(key), timedelta(seconds=run))

    def save(self, *, replace: bool = False) -> int:
        """Add the increments to their minute rows (new rows for new keys), or replace the table with
        them (``replace``: the first pass's build). The caller holds the metrics cursor of finished
        jobs: no other pass writes meanwhile. Returns the number of minute rows written."""
        if replace:
            JobStatsMinute.objects.all().delete()
        if not self.counts:
            return 0
        existing = (
            {}
            if replace
            else {
                (row.minute, row.owner_id, row.queue, row.task): row
                for row in JobStatsMinute.objects.filter(minute__in={key[0] for key in self.counts})
            }
        )
        changed, new = [], []
        for key, counts in self.counts.items():
            row = existing.get(key)
            if row is None:
                minute, owner_id, queue, task = key
                run_min, run_max = self.runs.get(key, (None, None))
                new.append(
                    JobStatsMinute(
                        minute=minute,
                        owner_id=owner_id,
                        queue=queue,
                        task=task,
                        run_min=run_min,
                        run_max=run_max,
                        **counts,
                    )
                )
                continue
            for field, increment in counts.items():
                setattr(row, field, getattr(row, field) + increment)
            if key in self.runs:
                shortest, longest = self.runs[key]
                if row.run_min is None:
                    row.run_min, row.run_max = shortest, longest
                else:
                    row.run_min, row.run_max = min(row.run_min, shortest), max(row.run_max, longest)
            changed.append(row)
        JobStatsMinute.objects.bulk_update(changed, (*COUNT_FIELDS, *RUN_RANGE_FIELDS), batch_size=500)
        JobStatsMinute.objects.bulk_create(new, batch_size=500)
        return len(changed) + len(new)


def _widen(current: tuple[timedelta, timedelta] | None, run: timedelta) -> tuple[timedelta, timedelta]:
    return (run, run) if current is None else (min(current[0], run), max(current[1], run))


def stats_rollup_add_sql(rows: str) -> tuple[str, dict[str, Any]]:
    """One ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` that adds the finished jobs of the
    relation ``rows`` (a CTE of the caller's statement) to their minute rows, and its parameters.

    ``rows`` has the columns ``at`` (finished_at), ``owner_id``, ``queue``, ``task``, ``status``
    and ``run`` (seconds, NULL when the job did not run this round: ``_JOB_ROWS`` of jobs/services/metric_sources.py).
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
