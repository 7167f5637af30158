"""The metrics rollup: monotonic totals of finished jobs and of retries, kept in ``MetricTotal``.

Prometheus counters and histograms must never go backwards, across restarts of every process and
after retention deletes the rows they were counted from. So each finished job (and each retry line
of a timeline) is counted once into a small table of totals, read incrementally from a watermark:
a scrape of ``/metrics``, beat's rollup task and the retention purge each advance it, and a scrape
never aggregates the whole job table.

Rows are stamped by the clocks of other hosts (a worker's ``finished_at``) and commit a moment
after they were stamped, so a row can appear behind the watermark. Each pass therefore re-reads the
last ``LATE`` (5 minutes) behind the watermark too, and ``MetricSeen`` remembers the rows counted
there so none is counted twice. A row that appears more than ``LATE`` behind the watermark is not
counted (a clock more than 5 minutes off).

The same pass feeds the stats rollup (``JobStatsMinute``, jobs/services/stats_rollup.py) from the same
rows of finished jobs, so both count each finished job once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast

from taskhub.clock import database_now

from ..models import (
    METRIC_BUCKETS,
    RETRY_EVENT_KINDS,
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    JobEventKind,
    JobStatus,
    MetricCursor,
    MetricSeen,
    MetricTotal,
)
from .stats_rollup import STATS_KEEP, StatsRollup, stats_rollup_build

logger = logging.getLogger(__name__)

LATE = timedelta(minutes=5)
BATCH = 5000
RETRY_KINDS = {
    JobEventKind.RETRY_SCHEDULED: "automatic",
    JobEventKind.REQUEUED: "worker_lost",
    JobEventKind.RETRIED: "manual",
}
UNKNOWN_EXCEPTION = "unknown"

# MetricTotal.metric values.
FINISHED = "finished"
FAILURES = "failures"
RETRIES = "retries"
WAIT, RUN = "wait_seconds", "run_seconds"
WAIT_BUCKETS, RUN_BUCKETS = METRIC_BUCKETS[WAIT], METRIC_BUCKETS[RUN]


def bucket_label(bound: float) -> str:
    return format(bound, "g")


class Totals:
    """Increments by label set, applied to ``MetricTotal`` at once."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str, str, str], float] = defaultdict(float)

    def add(self, metric: str, *, task: str = "", queue: str = "", status: str = "", label: str = "", by=1.0):
        self.values[(metric, task, queue, status, label)] += by

    def observe(self, metric: str, buckets: tuple[float, ...], *, task: str, seconds: float) -> None:
        """One observation of a histogram: its bucket (not cumulative) and its sum."""
        bound = next((b for b in buckets if seconds <= b), None)
        self.add(f"{metric}_bucket", task=task, label=bucket_label(bound) if bound is not None else "+Inf")
        self.add(f"{metric}_sum", task=task, by=seconds)

    def save(self) -> None:
        if not self.values:
            return
        metrics = {key[0] for key in self.values}
        existing = {
            (row.metric, row.task, row.queue, row.status, row.label): row
            for row in MetricTotal.objects.filter(metric__in=metrics)
        }
        changed, new = [], []
        for key, increment in self.values.items():
            if key in existing:
                existing[key].value += increment
                changed.append(existing[key])
            else:
                metric, task, queue, status, label = key
                new.append(
                    MetricTotal(metric=metric, task=task, queue=queue, status=status, label=label, value=increment)
                )
        MetricTotal.objects.bulk_update(changed, ["value"], batch_size=500)
        MetricTotal.objects.bulk_create(new, batch_size=500)


@dataclass(frozen=True)
class Source:
    """Rows the rollup counts: ``rows()`` filtered to the counted ones, stamped by ``time_field``."""

    name: str
    time_field: str
    rows: Callable[[], QuerySet]
    fields: tuple[str, ...]
    count: Callable[[dict[str, Any], Totals], None]
    stats: bool = False  # also feeds the stats rollup (finished jobs)


def _wait_and_run(row: dict[str, Any]) -> tuple[float, float] | None:
    """A finished job's wait in its queue and its run, in seconds; None when it did not start."""
    started, finished = row["started_at"], row["finished_at"]
    # Waiting starts when the job was created or became due (run_at, a retry's backoff), or went
    # round again (re-queued, retried by an operator): deliberate delays are not a queue's wait.
    due = max(t for t in (row["created_at"], row["run_at"], row["last_round"]) if t is not None)
    if started is None or started < due:
        return None  # it never started this round (cancelled while pending): no wait, no run
    return (started - due).total_seconds(), max(0.0, (finished - started).total_seconds())


def _count_job(row: dict[str, Any], totals: Totals) -> None:
    task, status = row["celery_task_name"], row["status"]
    totals.add(FINISHED, task=task, queue=row["queue"], status=status)
    if status == JobStatus.FAILED:
        totals.add(FAILURES, task=task, label=row["error_type"] or UNKNOWN_EXCEPTION)
    if (times := _wait_and_run(row)) is not None:
        totals.observe(WAIT, WAIT_BUCKETS, task=task, seconds=times[0])
        totals.observe(RUN, RUN_BUCKETS, task=task, seconds=times[1])


def _count_stats(row: dict[str, Any], rollup: StatsRollup) -> None:
    times = _wait_and_run(row)
    rollup.add(row, run=None if times is None else times[1])


def _finished_jobs() -> QuerySet:
    last_round = JobEvent.objects.filter(job_id=OuterRef("id"), kind__in=RETRY_EVENT_KINDS).order_by("-at")
    return Job.objects.filter(status__in=TERMINAL_STATUSES, finished_at__isnull=False).annotate(
        last_round=Subquery(last_round.values("at")[:1])
    )


def _count_retry(row: dict[str, Any], totals: Totals) -> None:
    totals.add(RETRIES, task=row["task"], label=RETRY_KINDS.get(row["kind"], row["kind"]))


def _retry_events() -> QuerySet:
    return JobEvent.objects.filter(kind__in=RETRY_EVENT_KINDS).annotate(task=F("job__celery_task_name"))


SOURCES = (
    Source(
        name="jobs",
        time_field="finished_at",
        rows=_finished_jobs,
        fields=(
            "owner_id",
            "celery_task_name",
            "queue",
            "status",
            "error_type",
            "created_at",
            "run_at",
            "started_at",
            "finished_at",
            "last_round",
        ),
        count=_count_job,
        stats=True,
    ),
    Source(name="retries", time_field="at", rows=_retry_events, fields=("task", "kind"), count=_count_retry),
)


def _build_stats(source: Source, *, now: datetime, low: datetime) -> None:
    """Build the stats rollup from the rows of the last day that passes so far counted (or, behind
    the first watermark, never will): at or before ``low``, or remembered in ``MetricSeen`` after it.
    The rows after ``low`` that no pass counted yet are left to the pass, which adds them."""
    seen = MetricSeen.objects.filter(source=source.name, key=OuterRef("seen_key"), at=OuterRef(source.time_field))
    rows = (
        source.rows()
        .filter(**{f"{source.time_field}__gt": now - STATS_KEEP})
        .alias(seen_key=Cast("pk", CharField(max_length=64)))
        .filter(Q(**{f"{source.time_field}__lte": low}) | Exists(seen))
    )
    logger.info("stats rollup built: %d minute rows", stats_rollup_build(rows))


def _advance(source: Source, batch: int) -> int | None:
    """Count one batch of ``source``'s new rows; how many, or None when another process holds it."""
    MetricCursor.objects.get_or_create(source=source.name)
    with transaction.atomic():
        cursor = MetricCursor.objects.select_for_update(skip_locked=True).filter(source=source.name).first()
        if cursor is None:
            return None  # another scrape or task is counting these rows right now
        now = database_now()
        watermark = cursor.watermark or now
        low = watermark - LATE
        if source.stats and cursor.stats_since is None:
            _build_stats(source, now=now, low=low)
            cursor.stats_since = now - STATS_KEEP
        seen = MetricSeen.objects.filter(source=source.name, key=OuterRef("seen_key"), at=OuterRef(source.time_field))
        rows = list(
            source.rows()
            .filter(**{f"{source.time_field}__gt": low})
            .annotate(seen_key=Cast("pk", CharField(max_length=64)))
            .filter(~Exists(seen))
            .order_by(source.time_field, "pk")
            .values("seen_key", *source.fields, seen_at=F(source.time_field))[:batch]
        )
        totals, rollup = Totals(), StatsRollup()
        for row in rows:
            source.count(row, totals)
            if source.stats:
                _count_stats(row, rollup)
        totals.save()
        rollup.save()
        MetricSeen.objects.bulk_create(
            [MetricSeen(source=source.name, key=row["seen_key"], at=row["seen_at"]) for row in rows],
            batch_size=1000,
            ignore_conflicts=True,
        )
        # Never past the database's now: a row from a clock that runs ahead must not hide the
        # rows that the other clocks stamp meanwhile.
        latest = max((row["seen_at"] for row in rows), default=watermark)
        cursor.watermark = max(watermark, min(latest, now))
        cursor.save(update_fields=["watermark", "stats_since"])
        MetricSeen.objects.filter(source=source.name, at__lte=cursor.watermark - LATE).delete()
    return len(rows)


def metrics_advance(
    *, batch: int = BATCH, until_done: bool = False, max_batches: int = 1000, stats_only: bool = False
) -> dict[str, int]:
    """Count the rows finished (and retries made) since the last pass into the totals (and the
    finished jobs into the stats rollup).

    One batch per source (a scrape, a stats request), or every batch until done (``until_done``:
    beat's task, the purge before it deletes). ``stats_only``: only the source the stats read (the
    stats endpoint). Returns the rows counted per source.
    """
    counted: dict[str, int] = {}
    for source in SOURCES:
        if stats_only and not source.stats:
            continue
        counted[source.name] = 0
        for _ in range(max_batches if until_done else 1):
            done = _advance(source, batch)
            if done is None:
                break
            counted[source.name] += done
            if done < batch:
                break
    return counted
