"""The stats rollup: jobs finished per minute, owner, queue and task (``JobStatsMinute``), which
``GET /api/v1/stats/`` reads instead of the job rows (jobs/observability/stats.py).

It is fed by the metrics pass (jobs/services/metrics.py), from the very rows that pass counts into
the metrics' totals, in the same transaction and under the same cursor lock:

- A row re-read in the 5-minute window behind the watermark was already excluded by ``MetricSeen``
  before either count sees it, so it adds to its minute once.
- One pass at a time holds the cursor, so adding to the minute rows (read, add, write) cannot race
  another pass; ``stats_rollup_prune`` only deletes minutes far older than any pass writes.
- The first pass after the table appears (``MetricCursor.stats_since`` empty) builds it from the job
  rows of the last day that the pass had counted or will never count (behind its watermark), so the
  stats show a whole day at once instead of filling up over a day.

A job that an operator retries and that finishes again counts once per finish, as in /metrics; a job
deleted later stays counted (retention cannot rewrite what finished in a minute).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, QuerySet
from django.db.models.functions import Coalesce, Greatest, TruncMinute

from ..models import STATS_RUN_BOUNDS, STATS_RUN_FIELDS, TERMINAL_STATUSES, JobStatsMinute

# What the stats show (a day), and a margin for a pass that runs late; older minutes are pruned.
STATS_WINDOW = timedelta(days=1)
STATS_KEEP = STATS_WINDOW + timedelta(hours=1)

Key = tuple[datetime, int, str, str]
COUNT_FIELDS = (*(str(status) for status in TERMINAL_STATUSES), *STATS_RUN_FIELDS)
RUN_RANGE_FIELDS = ("run_min", "run_max")


def _widen(
    current: tuple[timedelta, timedelta] | None, shortest: timedelta, longest: timedelta
) -> tuple[timedelta, timedelta]:
    if current is None:
        return shortest, longest
    return min(current[0], shortest), max(current[1], longest)


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def run_field(seconds: float) -> str:
    """The column of the bucket that holds a run of ``seconds`` (as /metrics: the first bound >= it)."""
    return next(field for bound, field in zip(STATS_RUN_BOUNDS, STATS_RUN_FIELDS, strict=True) if seconds <= bound)


class StatsRollup:
    """Increments per minute, owner, queue and task, applied to ``JobStatsMinute`` at once."""

    def __init__(self) -> None:
        self.counts: dict[Key, Counter] = defaultdict(Counter)
        self.runs: dict[Key, tuple[timedelta, timedelta]] = {}  # the shortest and longest run per key

    def add(self, row: dict[str, Any], *, run: float | None) -> None:
        """One finished job (a row of the metrics pass) and its run time (None: it did not run)."""
        key = (minute_of(row["finished_at"]), row["owner_id"], row["queue"], row["celery_task_name"])
        counts = self.counts[key]
        counts[row["status"]] += 1
        if run is not None:
            counts[run_field(run)] += 1
            self.runs[key] = _widen(self.runs.get(key), timedelta(seconds=run), timedelta(seconds=run))

    def save(self) -> None:
        """Add the increments to their minute rows (new rows for new keys). The caller holds the
        metrics cursor of finished jobs: no other pass writes meanwhile."""
        if not self.counts:
            return
        existing = {
            (row.minute, row.owner_id, row.queue, row.task): row
            for row in JobStatsMinute.objects.filter(minute__in={key[0] for key in self.counts})
        }
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
                current = None if row.run_min is None else (row.run_min, row.run_max)
                row.run_min, row.run_max = _widen(current, *self.runs[key])
            changed.append(row)
        JobStatsMinute.objects.bulk_update(changed, (*COUNT_FIELDS, *RUN_RANGE_FIELDS), batch_size=500)
        JobStatsMinute.objects.bulk_create(new, batch_size=500)


def stats_rollup_build(jobs: QuerySet) -> int:
    """Replace the table with ``jobs`` (finished jobs annotated with ``last_round``, as the metrics
    pass reads them) counted per minute, in one ``INSERT … SELECT`` (the first pass: a day of rows,
    up to millions, never through Python). The caller holds the metrics cursor of finished jobs.

    A run counts as the pass counts it (``_wait_and_run`` in jobs/services/metrics.py): only when the
    job started in its last round (at or after it was created, due, or sent round again)."""
    run = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    due = Greatest("created_at", Coalesce("run_at", "created_at"), Coalesce("last_round", "created_at"))
    counts = {str(status): Count("pk", filter=Q(status=status)) for status in TERMINAL_STATUSES}
    ran = Q(started_at__isnull=False, started_at__gte=F("due"))
    counts["run_min"], counts["run_max"] = Min("run", filter=ran), Max("run", filter=ran)
    lower = None
    for bound, field in zip(STATS_RUN_BOUNDS, STATS_RUN_FIELDS, strict=True):
        in_bucket = ran
        if lower is not None:
            in_bucket &= Q(run__gt=timedelta(seconds=lower))
        if bound != float("inf"):
            in_bucket &= Q(run__lte=timedelta(seconds=bound))
        counts[field] = Count("pk", filter=in_bucket)
        lower = bound
    per_minute = (
        jobs.annotate(run=run, due=due, minute=TruncMinute("finished_at", tzinfo=UTC), task=F("celery_task_name"))
        .values("minute", "owner_id", "queue", "task")
        .annotate(**counts)
        .order_by()
    )
    select, params = per_minute.query.sql_with_params()
    columns = ("minute", "owner_id", "queue", "task", *COUNT_FIELDS, *RUN_RANGE_FIELDS)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    JobStatsMinute.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JobStatsMinute._meta.db_table} ({names}) SELECT {names} FROM ({select}) AS per_minute",
            params,
        )
        return cursor.rowcount


def stats_rollup_prune(*, now: datetime) -> int:
    """Delete the minutes older than the stats show (a day) and a margin; how many rows went."""
    deleted, _ = JobStatsMinute.objects.filter(minute__lt=minute_of(now - STATS_KEEP)).delete()
    return deleted
