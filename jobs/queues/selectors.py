"""Read queries of queue control: the queues with their state and counts, rate limits, the audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import Now

from taskhub.errors import NotFound

from ..models import ACTIVE, Job, JobStatus, QueueControl, QueueControlChange, RateLimit, RateLimitScope
from ..selectors import due_pending, due_since


def queue_list(*, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Each queue of JOB_QUEUES (or of ``names``) with its pause, its rate limit and its job counts:
    ``pending``, of which ``unsent`` (no message in the broker: held by a pause, deferred by a rate
    limit or waiting for the sweeper) and ``held`` (may not start now: every pending job of a paused
    queue, else those whose run_at is ahead: a rate limit's deferral, a retry's backoff), ``running``;
    and ``oldest_pending_seconds``: how long the oldest due pending job has waited (since it was
    created, or its run_at; ``jobs.selectors.due_since``, as on the dashboard), None without one.
    A workflow step waiting for its parents is in none of them: it is not runnable until released.
    One query per table (the counts: one on the active jobs' index), the ages by the database's clock."""
    names = list(settings.JOB_QUEUES if names is None else names)
    controls = {
        control.name: control for control in QueueControl.objects.filter(name__in=names).select_related("paused_by")
    }
    limits = {limit.name: limit for limit in RateLimit.objects.filter(scope=RateLimitScope.QUEUE, name__in=names)}
    due = due_pending()
    counts = (
        Job.objects.filter(ACTIVE, queue__in=names, parents_remaining=0)
        .values("queue")
        .annotate(
            pending=Count("id", filter=Q(status=JobStatus.PENDING)),
            unsent=Count("id", filter=Q(status=JobStatus.PENDING, dispatched_at__isnull=True)),
            not_due=Count("id", filter=Q(status=JobStatus.PENDING) & ~due),
            running=Count("id", filter=Q(status=JobStatus.RUNNING)),
            due_since=Min(due_since(), filter=due),
            now=Now(),
        )
        .order_by()
    )
    by_queue = {row["queue"]: row for row in counts}
    queues = []
    for name in names:
        control, limit, count = controls.get(name), limits.get(name), by_queue.get(name, {})
        paused = bool(control and control.paused)
        since = count.get("due_since")
        queues.append(
            {
                "name": name,
                "paused": paused,
                "paused_at": control.paused_at if control else None,
                "paused_by": control.paused_by.get_username() if control and control.paused_by else None,
                "reason": control.reason if control else "",
                "rate_limit": {"limit": limit.limit, "period": limit.period} if limit else None,
                "pending": count.get("pending", 0),
                "unsent": count.get("unsent", 0),
                "held": count.get("pending", 0) if paused else count.get("not_due", 0),
                "running": count.get("running", 0),
                "oldest_pending_seconds": None
                if since is None
                else round(max(0.0, (count["now"] - since).total_seconds()), 3),
            }
        )
    return queues


def queue_get(*, name: str) -> dict[str, Any]:
    """One queue as :func:`queue_list` shows it; a name that is not in JOB_QUEUES is not found."""
    if name not in settings.JOB_QUEUES:
        raise NotFound(f"No queue {name!r}. Queues: {', '.join(settings.JOB_QUEUES)}.", code="unknown_queue")
    return queue_list(names=[name])[0]


def rate_limit_list() -> QuerySet[RateLimit]:
    return RateLimit.objects.select_related("updated_by").order_by("scope", "name")


def rate_limit_get(*, limit_id) -> RateLimit:
    limit = rate_limit_list().filter(id=limit_id).first()
    if limit is None:
        raise NotFound(f"Rate limit {limit_id} not found.")
    return limit


def queue_change_list() -> QuerySet[QueueControlChange]:
    return QueueControlChange.objects.select_related("actor")
