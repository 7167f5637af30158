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

The counting is done in the database, one statement per batch: the batch's rows are the source's
time-index range from the watermark's ``LATE`` behind (between re-reads of that window, beat's pass
reads on from the watermark itself: see ``_advance``) to the ``batch``-th row after it, less the
rows remembered in ``MetricSeen``; they are grouped by label set into ``INSERT … ON CONFLICT DO
UPDATE`` of the totals and of the stats' minutes, the rows of the new window are remembered, the
older ones forgotten and the watermark moved, all in that one statement under the cursor's lock.
Beat's pass grows its batches while one takes less than ``BATCH_SECONDS`` (up to ``BATCH_MAX``
rows), so a backlog of a million rows is counted in a few large transactions, none long.

That statement is PostgreSQL's (data-modifying ``WITH``, ``ON CONFLICT``, ``width_bucket``). On
SQLite (the embedded default of ``make run``: one host, few jobs) the same batch, with the same
bounds, watermark and ``MetricSeen`` rows, is read through the ORM and added up in Python
(``_count_orm``); the pass picks its path once per batch (``_counts_in_database``), as the door
picks ``_sql`` or the ORM. jobs/tests/observability/test_metrics_sqlite.py runs one scenario on
both and compares every total and minute row.

What is counted (the two sources, their SQL and their ORM counterparts) is
jobs/services/metric_sources.py; this module runs the pass over them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Cast

from taskhub.clock import database_now

from ..models import MetricCursor, MetricSeen
from .metric_sources import SOURCES, Source, Totals
from .stats_rollup import STATS_KEEP, StatsRollup, stats_rollup_build

logger = logging.getLogger(__name__)

LATE = timedelta(minutes=5)
# Rows per batch: one batch is what a scrape or a stats request counts, and beat's pass starts with
# it; beat's pass then grows its batches (at most 4x at a time) while one takes less than
# BATCH_SECONDS, up to BATCH_MAX rows, and shrinks them back (never under BATCH) when one takes longer.
BATCH = 10_000
BATCH_MAX = 500_000
BATCH_SECONDS = 1.0


def _counts_in_database() -> bool:
    """Whether the pass counts with its SQL (PostgreSQL) or through the ORM (SQLite)."""
    return connection.vendor == "postgresql"


def _orm_seen(source: Source) -> Exists:
    """``Source.seen`` for the ORM path (the row's key is annotated as ``seen_key``)."""
    seen = MetricSeen.objects.filter(source=source.name, key=OuterRef("seen_key"), at=OuterRef(source.orm.time))
    return Exists(seen)


def _orm_rows(source: Source, rows: QuerySet) -> list[dict[str, Any]]:
    """``rows`` with what ``Orm.count`` reads, their ``MetricSeen`` key and time."""
    return list(rows.values("seen_key", *source.orm.fields, seen_at=F(source.orm.time)))


def _build_stats(source: Source, *, now: datetime, low: datetime) -> None:
    """Build the stats rollup from the rows of the last day that passes so far counted (or, behind
    the first watermark, never will): at or before ``low``, or remembered in ``MetricSeen`` after it.
    The rows after ``low`` that no pass counted yet are left to the pass, which adds them."""
    since = now - STATS_KEEP
    if _counts_in_database():
        rows = source.rows.format(where=f"{source.time} > %(since)s AND ({source.time} <= %(low)s OR {source.seen})")
        built = stats_rollup_build(rows, {"source": source.name, "since": since, "low": low})
    else:
        time = source.orm.time
        rows = (
            source.orm.rows()
            .filter(**{f"{time}__gt": since})
            .annotate(seen_key=Cast("pk", CharField(max_length=64)))
            .filter(Q(**{f"{time}__lte": low}) | _orm_seen(source))
        )
        rollup, totals = StatsRollup(), Totals()  # the totals start at the first pass: not saved
        for row in _orm_rows(source, rows):
            source.orm.count(row, totals, rollup)
        built = rollup.save(replace=True)
    logger.info("stats rollup built: %d minute rows", built)


@dataclass(frozen=True)
class _Batch:
    """One batch's range (see ``Source.batch_sql``): the rows after ``low`` up to ``size`` rows after
    ``watermark`` (and every row up to the same time), remembering those after ``keep`` (None:
    ``LATE`` behind the new watermark); the new watermark never passes ``now``."""

    watermark: datetime
    low: datetime
    keep: datetime | None
    now: datetime
    size: int


def _count_sql(source: Source, batch: _Batch) -> tuple[int, datetime, datetime | None]:
    """Count the batch in the database, one statement (PostgreSQL): the rows counted, the new
    watermark and the batch's upper bound (None: every row after ``low``)."""
    sql, params = source.batch_sql
    with connection.cursor() as db:
        # JIT compiling would cost seconds per statement (its estimates count a subquery per
        # row), more than the statement itself takes.
        db.execute("SET LOCAL jit = off")
        db.execute(source.bound_sql, {"watermark": batch.watermark, "offset": batch.size - 1})
        high = (db.fetchone() or (None,))[0]
        db.execute(
            sql,
            {
                **params,
                "source": source.name,
                "watermark": batch.watermark,
                "low": batch.low,
                "high": high,
                "keep": batch.keep,
                "now": batch.now,
                "late": LATE,
            },
        )
        counted, mark = db.fetchone()
    return counted, mark, high


def _count_orm(source: Source, batch: _Batch) -> tuple[int, datetime, datetime | None]:
    """``_count_sql`` through the ORM (SQLite): the same range, watermark and ``MetricSeen`` rows,
    the rows added up in Python."""
    time = source.orm.time
    bound = source.orm.indexed().filter(**{f"{time}__gt": batch.watermark}).order_by(time)
    high = bound.values_list(time, flat=True)[batch.size - 1 : batch.size].first()
    rows = (
        source.orm.rows()
        .filter(**{f"{time}__gt": batch.low})
        .annotate(seen_key=Cast("pk", CharField(max_length=64)))
        .filter(~_orm_seen(source))
    )
    if high is not None:
        rows = rows.filter(**{f"{time}__lte": high})
    rows = _orm_rows(source, rows)
    totals, rollup = Totals(), (StatsRollup() if source.stats else None)
    for row in rows:
        source.orm.count(row, totals, rollup)
    totals.save()
    if rollup is not None:
        rollup.save()
    latest = high if high is not None else max((row["seen_at"] for row in rows), default=batch.watermark)
    mark = max(batch.watermark, min(latest, batch.now))
    keep = batch.keep if batch.keep is not None else mark - LATE
    MetricSeen.objects.bulk_create(
        [
            MetricSeen(source=source.name, key=row["seen_key"], at=row["seen_at"])
            for row in rows
            if row["seen_at"] > keep
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    MetricSeen.objects.filter(source=source.name, at__lte=keep).delete()
    MetricCursor.objects.filter(source=source.name).update(watermark=mark)
    return len(rows), mark, high


@dataclass
class _Pass:
    """Where one call of ``metrics_advance`` stands on one source (see ``_advance``)."""

    size: int
    floor: datetime | None = None  # the low end of the last re-read of the window (None: none yet)
    recheck: bool = True  # the next batch re-reads the window
    rechecked: bool = False  # the last batch re-read it


def _advance(source: Source, run: _Pass) -> tuple[int, bool] | None:
    """Count one batch of ``source``'s new rows: how many, and whether rows are left after it (None
    when another process holds the source).

    A batch re-reads the window behind the watermark (``LATE``) at the start of a call, at its end,
    and between whenever the watermark has moved two windows past the last re-read's low end (a
    re-read costs as many rows as it covers: 600,000 a window at 2,000 jobs a second). The batches
    between read on from the watermark and remember every row counted since the last re-read's low
    end, and the next re-read starts from there: a row that appeared up to ``LATE`` behind the
    watermark meanwhile is counted by it, and none twice."""
    MetricCursor.objects.get_or_create(source=source.name)
    with transaction.atomic():
        cursor = MetricCursor.objects.select_for_update(skip_locked=True).filter(source=source.name).first()
        if cursor is None:
            return None  # another scrape or task is counting these rows right now
        now = database_now()
        watermark = cursor.watermark or now
        if source.stats and cursor.stats_since is None:
            _build_stats(source, now=now, low=watermark - LATE)
            cursor.stats_since = now - STATS_KEEP
            cursor.save(update_fields=["stats_since"])
        recheck = run.recheck or run.floor is None or watermark - run.floor >= 2 * LATE
        if recheck:
            low, keep = (watermark - LATE if run.floor is None else run.floor), None
        else:
            low, keep = watermark, run.floor
        # The watermark moves to the batch's last row, never past the database's now: a row from a
        # clock that runs ahead must not hide the rows that the other clocks stamp meanwhile.
        count = _count_sql if _counts_in_database() else _count_orm
        counted, mark, high = count(source, _Batch(watermark=watermark, low=low, keep=keep, now=now, size=run.size))
        more = high is not None and high <= now
    if recheck:
        run.floor = mark - LATE
    run.rechecked, run.recheck = recheck, False
    return counted, more


def metrics_advance(
    *, batch: int = BATCH, until_done: bool = False, max_batches: int = 1000, stats_only: bool = False
) -> dict[str, int]:
    """Count the rows finished (and retries made) since the last pass into the totals (and the
    finished jobs into the stats rollup).

    One batch of ``batch`` rows per source (a scrape, a stats request), or every batch until done
    (``until_done``: beat's task, the purge before it deletes), growing while a batch takes less
    than ``BATCH_SECONDS``, and ending with a re-read of the window. ``stats_only``: only the source
    the stats read (the stats endpoint). Returns the rows counted per source.
    """
    counted: dict[str, int] = {}
    for source in SOURCES:
        if stats_only and not source.stats:
            continue
        counted[source.name] = 0
        run = _Pass(size=batch)
        for _ in range(max_batches if until_done else 1):
            started = time.monotonic()
            done = _advance(source, run)
            if done is None:
                break
            counted[source.name] += done[0]
            if not done[1]:
                if run.rechecked:
                    break  # caught up, and the window re-read after the last batch
                run.recheck = True
            speedup = BATCH_SECONDS / max(time.monotonic() - started, 0.001)
            run.size = max(batch, min(BATCH_MAX, int(run.size * min(4.0, speedup))))
    return counted
