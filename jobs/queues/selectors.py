"""Read queries of queue control: the queues with their state and counts, rate limits, the audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from taskhub.errors import NotFound

from ..models import ACTIVE_STATUSES, Job, JobStatus, QueueControl, QueueControlChange, RateLimit, RateLimitScope


def queue_list(*, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Each queue of JOB_QUEUES (or of ``names``) with its pause, its rate limit and its job counts:
    ``pending`` (of which ``unsent``: no message in the broker, i.e. held by a pause, deferred by a
    rate limit or waiting for the sweeper) and ``running``. One query per table."""
    names = list(settings.JOB_QUEUES if names is None else names)
    controls = {
        control.name: control for control in QueueControl.objects.filter(name__in=names).select_related("paused_by")
    }
    limits = {limit.name: limit for limit in RateLimit.objects.filter(scope=RateLimitScope.QUEUE, name__in=names)}
    counts = (
        Job.objects.filter(status__in=ACTIVE_STATUSES, queue__in=names)
        .values("queue")
        .annotate(
            pending=Count("id", filter=Q(status=JobStatus.PENDING)),
            unsent=Count("id", filter=Q(status=JobStatus.PENDING, dispatched_at__isnull=True)),
            running=Count("id", filter=Q(status=JobStatus.RUNNING)),
        )
    )
    by_queue = {row["queue"]: row for row in counts}
    queues = []
    for name in names:
        control, limit, count = controls.get(name), limits.get(name), by_queue.get(name, {})
        queues.append(
            {
                "name": name,
                "paused": bool(control and control.paused),
                "paused_at": control.paused_at if control else None,
                "paused_by": control.paused_by.get_username() if control and control.paused_by else None,
                "reason": control.reason if control else "",
                "rate_limit": {"limit": limit.limit, "period": limit.period} if limit else None,
                "pending": count.get("pending", 0),
                "unsent": count.get("unsent", 0),
                "running": count.get("running", 0),
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
