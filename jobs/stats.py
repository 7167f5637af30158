"""The figures of ``GET /api/v1/stats/`` and the admin dashboard, over the jobs a user may see
(``selectors.job_list``: their own, or all for staff).

Each read is bounded at 1,000,000 jobs: active jobs come from the small active-jobs index, finished
ones from the ``finished_at`` index over the last hour or day, never from the whole table.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, FloatField, Func, Min, QuerySet
from django.db.models.functions import Coalesce, Greatest, TruncMinute

from accounts.models import User
from taskhub.clock import database_now

from .metrics import due_pending, known_queues, running_per_worker, workers_alive
from .models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job
from .selectors import job_list

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
SLOWEST_DEFAULT, SLOWEST_MAX = 5, 50


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY expression)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


class Seconds(Func):
    """An interval in seconds (PostgreSQL's ``EXTRACT(EPOCH FROM …)``)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


def _percentile(values: list[float], fraction: float) -> float:
    """As percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _visible(user: User, *, queue: str | None, task: str | None) -> QuerySet[Job]:
    jobs = job_list(user=user).select_related(None)
    if queue:
        jobs = jobs.filter(queue=queue)
    if task:
        jobs = jobs.filter(celery_task_name=task)
    return jobs


def _counts(jobs: QuerySet[Job], now: datetime, *, queue: str | None) -> list[dict[str, Any]]:
    """Per queue: pending and running now, how long the oldest due pending job waits, and the jobs
    that finished in the last day per final status."""
    queues: dict[str, dict[str, Any]] = {}

    def queue_row(name: str) -> dict[str, Any]:
        return queues.setdefault(
            name,
            {"queue": name, **{str(s): 0 for s in (*ACTIVE_STATUSES, *TERMINAL_STATUSES)}, "oldest_pending_seconds": 0},
        )

    for name in [queue] if queue else known_queues():
        queue_row(name)
    active = jobs.filter(status__in=ACTIVE_STATUSES).values("queue", "status").annotate(n=Count("*")).order_by()
    for row in active:
        queue_row(row["queue"])[row["status"]] = row["n"]
    oldest = (
        jobs.filter(due_pending())
        .values("queue")
        .annotate(since=Min(Greatest("created_at", Coalesce("run_at", "created_at"))))
        .order_by()
    )
    for row in oldest:
        queue_row(row["queue"])["oldest_pending_seconds"] = round(max(0.0, (now - row["since"]).total_seconds()), 3)
    finished = (
        jobs.filter(status__in=TERMINAL_STATUSES, finished_at__gt=now - DAY)
        .values("queue", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    for row in finished:
        queue_row(row["queue"])[row["status"]] = row["n"]
    return [queues[name] for name in sorted(queues)]


def _throughput(jobs: QuerySet[Job], now: datetime, window: timedelta) -> dict[str, Any]:
    counts = dict(
        jobs.filter(status__in=TERMINAL_STATUSES, finished_at__gt=now - window)
        .values("status")
        .annotate(n=Count("*"))
        .order_by()
        .values_list("status", "n")
    )
    succeeded, failed, revoked = (counts.get(str(status), 0) for status in TERMINAL_STATUSES)
    finished = succeeded + failed + revoked
    return {
        "finished": finished,
        "succeeded": succeeded,
        "failed": failed,
        "revoked": revoked,
        "per_minute": round(finished / (window.total_seconds() / 60), 3),
        # Of the jobs that ran to an outcome (cancelled ones are nobody's failure); None without any.
        "failure_rate": round(failed / (succeeded + failed), 4) if succeeded + failed else None,
    }


def _per_minute(jobs: QuerySet[Job], now: datetime) -> list[dict[str, Any]]:
    """Finished jobs per minute over the last hour, oldest first: 60 whole minutes and the current one."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=60)
    rows = (
        jobs.filter(status__in=TERMINAL_STATUSES, finished_at__gte=start)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    series = {start + timedelta(minutes=i): {str(s): 0 for s in TERMINAL_STATUSES} for i in range(61)}
    for row in rows:
        minute = row["minute"]
        if minute in series:
            series[minute][row["status"]] = row["n"]
    return [{"minute": minute, **counts} for minute, counts in series.items()]


def _slowest(jobs: QuerySet[Job], now: datetime, limit: int) -> list[dict[str, Any]]:
    """Tasks by their p95 run time over the jobs finished in the last day, slowest first."""
    ran = jobs.filter(
        status__in=TERMINAL_STATUSES,
        finished_at__gt=now - DAY,
        started_at__isnull=False,
        finished_at__gte=F("started_at"),
    )
    if connection.vendor == "postgresql":
        seconds = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        epoch = Seconds(seconds)
        rows = list(
            ran.values("celery_task_name")
            .annotate(runs=Count("*"), p50=PercentileCont(epoch, 0.5), p95=PercentileCont(epoch, 0.95))
            .order_by("-p95", "celery_task_name")[:limit]
        )
    else:  # SQLite (the embedded default, one machine): in Python
        durations: dict[str, list[float]] = {}
        for task, started, finished in ran.values_list("celery_task_name", "started_at", "finished_at"):
            durations.setdefault(task, []).append((finished - started).total_seconds())
        rows = [
            {"celery_task_name": task, "runs": len(v), "p50": _percentile(v, 0.5), "p95": _percentile(v, 0.95)}
            for task, v in durations.items()
        ]
        rows = sorted(rows, key=lambda row: (-row["p95"], row["celery_task_name"]))[:limit]
    return [
        {
            "task": row["celery_task_name"],
            "runs": row["runs"],
            "p50_seconds": round(row["p50"], 3),
            "p95_seconds": round(row["p95"], 3),
        }
        for row in rows
    ]


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


def job_stats(*, user: User, queue: str | None = None, task: str | None = None, slowest: int = SLOWEST_DEFAULT):
    """Every figure of the stats endpoint for ``user``'s visible jobs (optionally one queue, one task).

    Worker processes are infrastructure: staff see them, other users get None.
    """
    jobs = _visible(user, queue=queue, task=task)
    now = database_now()
    return {
        "scope": "all" if user.is_staff else "own",
        "generated_at": now,
        "queues": _counts(jobs, now, queue=queue),
        "last_hour": _throughput(jobs, now, HOUR),
        "last_day": _throughput(jobs, now, DAY),
        "finished_per_minute": _per_minute(jobs, now),
        "slowest_tasks": _slowest(jobs, now, slowest),
        "workers": _workers() if user.is_staff else None,
    }
