"""What the metrics rollup counts (jobs/services/metrics.py runs the pass): its two sources, the
finished jobs and the retry lines of the timelines, each as SQL (the rows, and the totals that one
batch's statement adds up by label set in the database: PostgreSQL) and as the ORM's rows and
counters added up in Python (``Orm``, ``Totals``: SQLite). ``SOURCES`` is the pass's list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery

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
from .stats_rollup import StatsRollup, stats_rollup_add_sql

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

JOBS, EVENTS = Job._meta.db_table, JobEvent._meta.db_table
SEEN, TOTALS, CURSORS = MetricSeen._meta.db_table, MetricTotal._meta.db_table, MetricCursor._meta.db_table


def bucket_label(bound: float) -> str:
    return format(bound, "g")


def _literals(values) -> str:
    """Constants of the code (statuses, event kinds) as SQL literals: the partial indexes'
    predicates are written with literals, and the planner proves them from literals alone."""
    return ", ".join(f"'{value}'" for value in values)


def _histogram_sql(metric: str, column: str) -> tuple[str, dict[str, Any]]:
    """The bucket (as its ``le`` label; not cumulative) and the sum of one histogram per task, from
    ``column`` (seconds) of the batch. ``width_bucket`` over the negated bounds in ascending order
    is the number of bounds at or above the value: the bucket is the first of them (+Inf: none)."""
    buckets = METRIC_BUCKETS[metric]
    params = {
        f"{metric}_labels": [bucket_label(bound) for bound in buckets] + ["+Inf"],
        f"{metric}_count": len(buckets) + 1,
        f"{metric}_bounds": [-float(bound) for bound in reversed(buckets)],
    }
    label = (
        f"(%({metric}_labels)s::text[])[%({metric}_count)s - width_bucket(-{column}, %({metric}_bounds)s::float8[])]"
    )
    sql = f"""
        SELECT '{metric}_bucket', task, '', '', {label}, count(*)::float8 FROM batch
        WHERE {column} IS NOT NULL GROUP BY 2, 5
        UNION ALL
        SELECT '{metric}_sum', task, '', '', '', sum({column}) FROM batch WHERE {column} IS NOT NULL GROUP BY 2
    """
    return sql, params


# A finished job's row as the totals and the stats count it. Its wait in its queue and its run, in
# seconds, are NULL when it did not start this round (cancelled while pending). Waiting starts when
# the job was created or became due (run_at, a retry's backoff), or went round again (re-queued,
# retried by an operator): deliberate delays are not a queue's wait.
_JOB_ROWS = f"""
    SELECT j.id::text AS key, j.finished_at AS at, j.owner_id, j.celery_task_name AS task, j.queue, j.status,
           j.error_type,
           CASE WHEN j.started_at >= GREATEST(j.created_at, j.run_at, r.last_round)
                THEN EXTRACT(EPOCH FROM j.started_at - GREATEST(j.created_at, j.run_at, r.last_round))::float8
           END AS wait,
           CASE WHEN j.started_at >= GREATEST(j.created_at, j.run_at, r.last_round)
                THEN GREATEST(0, EXTRACT(EPOCH FROM j.finished_at - j.started_at))::float8 END AS run
    FROM {JOBS} j
    LEFT JOIN LATERAL (
        SELECT max(e.at) AS last_round FROM {EVENTS} e
        WHERE e.job_id = j.id AND e.kind IN ({_literals(RETRY_EVENT_KINDS)})
    ) AS r ON true
    WHERE j.status IN ({_literals(TERMINAL_STATUSES)}) AND j.finished_at IS NOT NULL AND {{where}}
"""
_RETRY_ROWS = f"""
    SELECT e.id::text AS key, e.at, j.celery_task_name AS task, e.kind
    FROM {EVENTS} e JOIN {JOBS} j ON j.id = e.job_id
    WHERE e.kind IN ({_literals(RETRY_EVENT_KINDS)}) AND {{where}}
"""


def _job_totals() -> tuple[str, dict[str, Any]]:
    wait, wait_params = _histogram_sql(WAIT, "wait")
    run, run_params = _histogram_sql(RUN, "run")
    sql = f"""
        SELECT '{FINISHED}', task, queue, status, '', count(*)::float8 FROM batch GROUP BY 2, 3, 4
        UNION ALL
        SELECT '{FAILURES}', task, '', '', COALESCE(NULLIF(error_type, ''), '{UNKNOWN_EXCEPTION}'), count(*)::float8
        FROM batch WHERE status = '{JobStatus.FAILED}' GROUP BY 2, 5
        UNION ALL {wait}
        UNION ALL {run}
    """
    return sql, {**wait_params, **run_params}


def _retry_totals() -> tuple[str, dict[str, Any]]:
    kinds = " ".join(f"WHEN '{kind}' THEN '{label}'" for kind, label in RETRY_KINDS.items())
    label = f"CASE kind {kinds} ELSE kind END"
    return f"SELECT '{RETRIES}', task, '', '', {label}, count(*)::float8 FROM batch GROUP BY 2, 5", {}


# The ORM path (SQLite): the same rows read through the ORM and added up in Python, as the SQL above
# adds them up in the database.


class Totals:
    """Increments by label set, applied to ``MetricTotal`` at once."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str, str, str], float] = defaultdict(float)

    def add(self, metric: str, *, task: str = "", queue: str = "", status: str = "", label: str = "", by=1.0):
        self.values[(metric, task, queue, status, label)] += by

    def observe(self, metric: str, *, task: str, seconds: float) -> None:
        """One observation of a histogram: its bucket (not cumulative: the first bound at or above
        it, as ``_histogram_sql``) and its sum."""
        bound = next((b for b in METRIC_BUCKETS[metric] if seconds <= b), None)
        self.add(f"{metric}_bucket", task=task, label=bucket_label(bound) if bound is not None else "+Inf")
        self.add(f"{metric}_sum", task=task, by=seconds)

    def save(self) -> None:
        """Add the increments to their rows (new rows for new label sets). The caller holds the
        source's cursor, and each source writes metrics of its own: no other pass writes them."""
        if not self.values:
            return
        existing = {
            (row.metric, row.task, row.queue, row.status, row.label): row
            for row in MetricTotal.objects.filter(metric__in={key[0] for key in self.values})
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


def _wait_and_run(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """A finished job's wait and run in seconds, as ``_JOB_ROWS`` computes them (None, None: it did
    not start this round)."""
    started, finished = row["started_at"], row["finished_at"]
    due = max(t for t in (row["created_at"], row["run_at"], row["last_round"]) if t is not None)
    if started is None or started < due:
        return None, None
    return (started - due).total_seconds(), max(0.0, (finished - started).total_seconds())


def _count_job(row: dict[str, Any], totals: Totals, rollup: StatsRollup | None) -> None:
    task, status = row["celery_task_name"], row["status"]
    wait, run = _wait_and_run(row)
    totals.add(FINISHED, task=task, queue=row["queue"], status=status)
    if status == JobStatus.FAILED:
        totals.add(FAILURES, task=task, label=row["error_type"] or UNKNOWN_EXCEPTION)
    if run is not None:
        totals.observe(WAIT, task=task, seconds=wait)
        totals.observe(RUN, task=task, seconds=run)
    if rollup is not None:
        rollup.add(
            at=row["finished_at"], owner_id=row["owner_id"], queue=row["queue"], task=task, status=status, run=run
        )


def _count_retry(row: dict[str, Any], totals: Totals, rollup: StatsRollup | None) -> None:
    totals.add(RETRIES, task=row["task"], label=RETRY_KINDS.get(row["kind"], row["kind"]))


def _finished_jobs() -> QuerySet:
    last_round = JobEvent.objects.filter(job_id=OuterRef("id"), kind__in=RETRY_EVENT_KINDS).order_by("-at")
    return Job.objects.filter(status__in=TERMINAL_STATUSES, finished_at__isnull=False).annotate(
        last_round=Subquery(last_round.values("at")[:1])
    )


def _retry_events() -> QuerySet:
    return JobEvent.objects.filter(kind__in=RETRY_EVENT_KINDS).annotate(task=F("job__celery_task_name"))


@dataclass(frozen=True)
class Orm:
    """A source's rows for the ORM path: ``rows()``, stamped by ``time`` (a field), counted by
    ``count`` from the ``fields`` of each; the batch's upper bound ranges over ``indexed`` (the time
    index's own rows, as ``Source.bound_sql``)."""

    rows: Callable[[], QuerySet]
    time: str
    indexed: Callable[[], QuerySet]
    fields: tuple[str, ...]
    count: Callable[[dict[str, Any], Totals, StatsRollup | None], None]


@dataclass(frozen=True)
class Source:
    """Rows the rollup counts: ``rows`` (SQL with a ``{where}`` to fill: the columns ``key`` and
    ``at`` and what ``totals`` counts), stamped by ``time`` (a column with an index in that order,
    partial by ``index_filter``), of ``table``."""

    name: str
    table: str
    time: str
    index_filter: str
    rows: str
    totals: Any  # () -> (SQL of metric, task, queue, status, label, value rows from ``batch``, params)
    key: str
    orm: Orm  # the same rows and counts on SQLite
    stats: bool = False  # also feeds the stats rollup (finished jobs)

    @property
    def seen(self) -> str:
        """The row is remembered in ``MetricSeen`` (counted in the window behind the watermark)."""
        where = f"s.source = %(source)s AND s.key = {self.key} AND s.at = {self.time}"
        return f"EXISTS (SELECT 1 FROM {SEEN} s WHERE {where})"

    @cached_property
    def batch_sql(self) -> tuple[str, dict[str, Any]]:
        """The statement that counts one batch (see the module's docstring): the rows after ``low``
        up to ``high`` (``bound_sql``; none: every row after ``low``); rows after ``keep`` are
        remembered and the others forgotten (no ``keep``: the 5 minutes behind the new watermark).
        It answers the rows counted and the new watermark. ``high`` is a value, not a subquery, so
        that the planner sees how few rows the range holds (and probes ``MetricSeen`` by its index
        instead of hashing all of it)."""
        totals, params = self.totals()
        in_range = f"{self.time} > %(low)s AND {self.time} <= COALESCE(%(high)s, 'infinity'::timestamptz)"
        rows = self.rows.format(where=f"{in_range} AND NOT {self.seen}")
        stats = ""
        if self.stats:
            stats_sql, stats_params = stats_rollup_add_sql("batch")
            stats, params = f", stats AS ({stats_sql})", {**params, **stats_params}
        sql = f"""
            WITH batch AS MATERIALIZED ({rows}),
            mark AS (
                SELECT GREATEST(
                    %(watermark)s, LEAST(COALESCE(%(high)s, max(at), %(watermark)s), %(now)s)
                ) AS at FROM batch
            ),
            keep AS (SELECT COALESCE(%(keep)s, mark.at - %(late)s) AS at FROM mark),
            remembered AS (
                INSERT INTO {SEEN} (source, key, at)
                SELECT %(source)s, batch.key, batch.at FROM batch, keep WHERE batch.at > keep.at
                ON CONFLICT DO NOTHING
            ),
            forgotten AS (DELETE FROM {SEEN} WHERE source = %(source)s AND at <= (SELECT at FROM keep)),
            totals AS (
                INSERT INTO {TOTALS} (metric, task, queue, status, label, value) {totals}
                ON CONFLICT (metric, task, queue, status, label) DO UPDATE SET value = {TOTALS}.value + EXCLUDED.value
            ){stats},
            moved AS (UPDATE {CURSORS} SET watermark = mark.at FROM mark WHERE {CURSORS}.source = %(source)s)
            SELECT (SELECT count(*) FROM batch), (SELECT at FROM mark)
        """
        return sql, params

    @cached_property
    def bound_sql(self) -> str:
        """The time of the ``offset``-th row after the watermark (an index-only range), or none."""
        column = self.time.rpartition(".")[2]
        return (
            f"SELECT {column} FROM {self.table} WHERE {self.index_filter} AND {column} > %(watermark)s "
            f"ORDER BY {column} OFFSET %(offset)s LIMIT 1"
        )


SOURCES = (
    Source(
        name="jobs",
        table=JOBS,
        time="j.finished_at",
        index_filter="finished_at IS NOT NULL",
        rows=_JOB_ROWS,
        totals=_job_totals,
        key="j.id::text",
        orm=Orm(
            rows=_finished_jobs,
            time="finished_at",
            indexed=lambda: Job.objects.filter(finished_at__isnull=False),
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
        ),
        stats=True,
    ),
    Source(
        name="retries",
        table=EVENTS,
        time="e.at",
        index_filter=f"kind IN ({_literals(RETRY_EVENT_KINDS)})",
        rows=_RETRY_ROWS,
        totals=_retry_totals,
        key="e.id::text",
        orm=Orm(
            rows=_retry_events,
            time="at",
            indexed=lambda: JobEvent.objects.filter(kind__in=RETRY_EVENT_KINDS),
            fields=("task", "kind"),
            count=_count_retry,
        ),
    ),
)
