"""The figures of ``GET /api/v1/stats/`` and the admin dashboard, over the jobs a user may see
(their own, or all for staff).

Cheap at 1,000,000 jobs a day: what finished comes from the per-minute rollup (``JobStatsMinute``: a
row per minute, owner, queue and task, which the metrics pass advances), never from the job rows;
what is live and must be exact (pending and running now, the oldest due pending job) comes from the
small indexes of active jobs. Each request first advances the rollup by one bounded batch (as a
/metrics scrape does), so a job that finished a second ago is counted.

Windows are whole minutes by the database's clock: the last hour is the current minute and the 59
before it, the last day the current minute and the 1,439 before it. Run-time percentiles come from
the rollup's histogram buckets (the buckets of /metrics' ``taskhub_job_run_seconds``), interpolated
linearly inside the bucket that holds the rank, as Prometheus' ``histogram_quantile`` does, then
clamped to the shortest and longest run the rollup kept (a few runs stay inside their own range).
"""

from __future__ import annotations

import operator
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Min, Q, QuerySet, Sum

from accounts.models import User
from taskhub.clock import database_now

from ..models import (
    ACTIVE,
    ACTIVE_STATUSES,
    STATS_RUN_BOUNDS,
    STATS_RUN_FIELDS,
    TERMINAL_STATUSES,
    Job,
    JobStatsMinute,
    Workflow,
    WorkflowStatus,
)
from ..selectors import due_pending, due_since, job_list, sees_every_job, steps_waiting
from ..services.metrics import metrics_advance
from ..services.stats_rollup import minute_of
from .collector import known_queues, running_per_worker, workers_alive

HOUR_MINUTES, DAY_MINUTES = 60, 24 * 60
SLOWEST_DEFAULT, SLOWEST_MAX = 5, 50
OUTCOMES = tuple(str(status) for status in TERMINAL_STATUSES)


def histogram_quantile(
    fraction: float, counts: list[int], *, shortest: float | None = None, longest: float | None = None
) -> float | None:
    """The ``fraction`` quantile of a histogram: ``counts`` per bucket of ``STATS_RUN_BOUNDS`` (not
    cumulative). As Prometheus' histogram_quantile: the rank ``fraction * total`` falls in a bucket;
    the value is interpolated linearly between that bucket's lower and upper bound (the first bucket
    starts at 0; a rank in the last, unbounded bucket gives the highest finite bound). None: no runs.

    Given the shortest and longest run, the value is clamped to them: a quantile of a few runs never
    reads below the shortest or above the longest (one run: every quantile is that run)."""
    value = _interpolated(fraction, counts)
    if value is not None and shortest is not None and longest is not None:
        value = min(max(value, shortest), longest)
    return value


def _interpolated(fraction: float, counts: list[int]) -> float | None:
    total = sum(counts)
    if not total:
        return None
    rank, below = fraction * total, 0
    for index, (bound, count) in enumerate(zip(STATS_RUN_BOUNDS, counts, strict=True)):
        if count and below + count >= rank:
            if bound == float("inf"):
                return STATS_RUN_BOUNDS[index - 1]
            lower = STATS_RUN_BOUNDS[index - 1] if index else 0.0
            return lower + (bound - lower) * (rank - below) / count
        below += count
    return STATS_RUN_BOUNDS[-2]


def _visible(user: User, *, queue: str | None, task: str | None) -> QuerySet[Job]:
    jobs = job_list(user=user).select_related(None)
    if queue:
        jobs = jobs.filter(queue=queue)
    if task:
        jobs = jobs.filter(celery_task_name=task)
    return jobs


def _visible_minutes(user: User, *, queue: str | None, task: str | None) -> QuerySet[JobStatsMinute]:
    """The rollup's rows of the jobs ``user`` may see (the same rule as ``job_list``)."""
    rows = JobStatsMinute.objects.all() if sees_every_job(user) else JobStatsMinute.objects.filter(owner=user)
    if queue:
        rows = rows.filter(queue=queue)
    if task:
        rows = rows.filter(task=task)
    return rows


def _last_day(rows: QuerySet[JobStatsMinute], now_minute: datetime) -> list[dict[str, Any]]:
    """Per queue and task over the last day: finished jobs per outcome and the run-time buckets."""
    sums: dict[str, Any] = {field: Sum(field) for field in (*OUTCOMES, *STATS_RUN_FIELDS)}
    ran = reduce(operator.or_, (Q(**{f"{field}__gt": 0}) for field in STATS_RUN_FIELDS))
    # Rows written before the rollup kept the shortest and longest run: their range is unknown.
    sums.update(run_min=Min("run_min"), run_max=Max("run_max"), unranged=Count("pk", filter=Q(without_range=True)))
    return list(
        rows.filter(minute__gt=now_minute - timedelta(minutes=DAY_MINUTES), minute__lte=now_minute)
        .alias(without_range=ExpressionWrapper(ran & Q(run_max=None), output_field=BooleanField()))
        .values("queue", "task")
        .annotate(**sums)
        .order_by()
    )


def _counts(jobs: QuerySet[Job], day: list[dict[str, Any]], now: datetime, *, queue: str | None):
    """Per queue: pending and running now, how long the oldest due pending job waits (exact, from
    the job rows' active indexes), and the jobs that finished in the last day per final status."""
    queues: dict[str, dict[str, Any]] = {}

    def queue_row(name: str) -> dict[str, Any]:
        return queues.setdefault(
            name,
            {"queue": name, **{str(s): 0 for s in (*ACTIVE_STATUSES, *TERMINAL_STATUSES)}, "oldest_pending_seconds": 0},
        )

    for name in [queue] if queue else known_queues():
        queue_row(name)
    active = jobs.filter(ACTIVE, parents_remaining=0)  # waiting workflow steps are not runnable
    active = active.values("queue", "status").annotate(n=Count("*")).order_by()
    for row in active:
        queue_row(row["queue"])[row["status"]] = row["n"]
    oldest = jobs.filter(due_pending()).values("queue").annotate(since=Min(due_since())).order_by()
    for row in oldest:
        queue_row(row["queue"])["oldest_pending_seconds"] = round(max(0.0, (now - row["since"]).total_seconds()), 3)
    for row in day:
        counts = queue_row(row["queue"])
        for outcome in OUTCOMES:
            counts[outcome] += row[outcome] or 0
    return [queues[name] for name in sorted(queues)]


def _throughput(counts: dict[str, int], minutes: int) -> dict[str, Any]:
    succeeded, failed, revoked, expired = (counts.get(outcome, 0) for outcome in OUTCOMES)
    finished = succeeded + failed + revoked + expired
    return {
        "finished": finished,
        "succeeded": succeeded,
        "failed": failed,
        "revoked": revoked,
        "expired": expired,
        "per_minute": round(finished / minutes, 3),
        # Of the jobs that ran to an outcome (cancelled or expired ones are nobody's failure); None without any.
        "failure_rate": round(failed / (succeeded + failed), 4) if succeeded + failed else None,
    }


def _day_totals(day: list[dict[str, Any]]) -> dict[str, int]:
    return {outcome: sum(row[outcome] or 0 for row in day) for outcome in OUTCOMES}


def _per_minute(rows: QuerySet[JobStatsMinute], now_minute: datetime) -> list[dict[str, Any]]:
    """Finished jobs per minute over the last hour, oldest first: 60 whole minutes and the current one."""
    start = now_minute - timedelta(minutes=HOUR_MINUTES)
    series = {start + timedelta(minutes=i): {outcome: 0 for outcome in OUTCOMES} for i in range(HOUR_MINUTES + 1)}
    per_minute = (
        rows.filter(minute__gte=start, minute__lte=now_minute)
        .values("minute")
        .annotate(**{outcome: Sum(outcome) for outcome in OUTCOMES})
        .order_by()
    )
    for row in per_minute:
        if row["minute"] in series:
            series[row["minute"]] = {outcome: row[outcome] or 0 for outcome in OUTCOMES}
    return [{"minute": minute, **counts} for minute, counts in series.items()]


def _last_hour(series: list[dict[str, Any]]) -> dict[str, int]:
    """The current minute and the 59 before it (the series' last 60 entries)."""
    return {outcome: sum(minute[outcome] for minute in series[-HOUR_MINUTES:]) for outcome in OUTCOMES}


def _slowest(day: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Tasks by their p95 run time over the jobs finished in the last day, slowest first."""
    per_task: dict[str, list[int]] = {}
    ranges: dict[str, dict[str, Any]] = {}
    for row in day:
        counts = per_task.setdefault(row["task"], [0] * len(STATS_RUN_FIELDS))
        for index, field in enumerate(STATS_RUN_FIELDS):
            counts[index] += row[field] or 0
        ranges.setdefault(row["task"], {"runs": [], "unranged": 0})
        ranges[row["task"]]["unranged"] += row["unranged"]
        ranges[row["task"]]["runs"] += [run for run in (row["run_min"], row["run_max"]) if run is not None]
    tasks = []
    for task, counts in per_task.items():
        if sum(counts):
            runs = ranges[task]["runs"] if not ranges[task]["unranged"] else []
            bounds = {"shortest": min(runs).total_seconds(), "longest": max(runs).total_seconds()} if runs else {}
            p50, p95 = histogram_quantile(0.5, counts, **bounds), histogram_quantile(0.95, counts, **bounds)
            tasks.append(
                {"task": task, "runs": sum(counts), "p50_seconds": round(p50, 3), "p95_seconds": round(p95, 3)}
            )
    return sorted(tasks, key=lambda row: (-row["p95_seconds"], row["task"]))[:limit]


def _workers() -> list[dict[str, Any]]:
    running = running_per_worker()
    return [
        {
            "worker": worker.label,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "queues": worker.queues,
            "started_at": worker.started_at,
            "last_seen": worker.last_seen,
            "running": running.get(worker.label, 0),
        }
        for worker in workers_alive()
    ]


def _workflows(user: User) -> dict[str, int]:
    """The workflows ``user`` may see (as their jobs) by status, as /metrics' ``taskhub_workflows``
    gauge counts them, and their steps waiting for parents (not in the queues' pending figures)."""
    workflows, waiting = Workflow.objects.all(), steps_waiting()
    if not sees_every_job(user):
        workflows, waiting = workflows.filter(owner=user), waiting.filter(owner=user)
    by_status = dict(workflows.values_list("status").annotate(n=Count("id")).order_by())
    return {**{status: by_status.get(status, 0) for status in WorkflowStatus.values}, "steps_waiting": waiting.count()}


def job_stats(*, user: User, queue: str | None = None, task: str | None = None, slowest: int = SLOWEST_DEFAULT):
    """Every figure of the stats endpoint for ``user``'s visible jobs (optionally one queue, one task).

    Worker processes are infrastructure: staff see them, other users get None.
    """
    metrics_advance(stats_only=True)  # count what finished since the last pass (one bounded batch)
    now = database_now()
    now_minute = minute_of(now)
    minutes = _visible_minutes(user, queue=queue, task=task)
    day = _last_day(minutes, now_minute)
    series = _per_minute(minutes, now_minute)
    return {
        "scope": "all" if sees_every_job(user) else "own",
        "generated_at": now,
        "queues": _counts(_visible(user, queue=queue, task=task), day, now, queue=queue),
        "last_hour": _throughput(_last_hour(series), HOUR_MINUTES),
        "last_day": _throughput(_day_totals(day), DAY_MINUTES),
        "finished_per_minute": series,
        "slowest_tasks": _slowest(day, slowest),
        "workers": _workers() if user.is_staff else None,
        "workflows": _workflows(user),
    }
