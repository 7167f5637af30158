"""Queue control, the operators' side: pause and resume a queue, set or clear a rate limit.

Every change is written with its audit line (``QueueControlChange``: who, when, from where) in
one transaction. Enforcement is ``jobs.services.gates``' (dispatch, start, sweep).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from taskhub.errors import ApplicationError, InvalidInput

from ..catalog import catalog
from ..models import (
    RATE_LIMIT_MAX,
    RATE_PERIOD_MAX,
    QueueControl,
    QueueControlAction,
    QueueControlChange,
    QueueControlSource,
    RateLimit,
    RateLimitScope,
    RateLimitSlot,
)
from ..services.gates import forget_limits
from ..services.labels import user_label
from ..services.recovery import job_dispatch_due

logger = logging.getLogger(__name__)

# Resuming sends the queue's held jobs at once, this many batches of 500 (the sweeper sends the rest).
RESUME_BATCHES = 10
# A slot never used: free for any start.
NEVER = datetime(2000, 1, 1, tzinfo=UTC)


def queue_check(name: str, *, field: str = "queue") -> str:
    """``name`` if it is one of JOB_QUEUES, else a 400 naming ``field`` and the queues there are."""
    if name not in settings.JOB_QUEUES:
        known = ", ".join(settings.JOB_QUEUES)
        raise InvalidInput(
            f"{field}: {name!r} is not a queue. Queues: {known}.",
            code="unknown_queue",
            fields={field: [f"Not a queue. Queues: {known}."]},
        )
    return name


def task_check(name: str, *, field: str = "task") -> str:
    """The canonical name of a catalog task (name or alias), else a 400 naming ``field``."""
    try:
        return catalog.get(name).name
    except ApplicationError as exc:
        raise InvalidInput(
            f"{field}: {name!r} is not a registered task (see /api/v1/task-catalog/).",
            code="unknown_task",
            fields={field: ["Not a registered task."]},
        ) from exc


def _check_number(value, *, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(
            f"{field}: must be a whole number from 1 to {maximum}, got {value!r}.",
            fields={field: [f"Must be a whole number from 1 to {maximum}."]},
        )
    return value


def queue_controls_ensure() -> None:
    """A row for every queue of JOB_QUEUES (not paused), so lists and the admin show them all."""
    existing = set(QueueControl.objects.values_list("name", flat=True))
    missing = [QueueControl(name=name) for name in settings.JOB_QUEUES if name not in existing]
    if missing:
        QueueControl.objects.bulk_create(missing, ignore_conflicts=True)


def _audit(*, by: User | None, source: str, action: str, scope: str, name: str, before, after, reason: str = ""):
    if source not in QueueControlSource.values:
        raise ValueError(f"source must be one of {QueueControlSource.values}, got {source!r}")
    QueueControlChange.objects.create(
        actor=by,
        actor_label=user_label(by),
        source=source,
        action=action,
        scope=scope,
        name=name,
        before=before,
        after=after,
        reason=reason[:500],
    )


def queue_pause(*, queue: str, by: User | None, source: str, reason: str = "") -> bool:
    """Pause ``queue``: its pending jobs are not sent and none of them starts; running jobs go on.
    True when it was running (False: it was paused already, nothing changed or recorded)."""
    queue_check(queue)
    with transaction.atomic():
        QueueControl.objects.get_or_create(name=queue)
        changed = QueueControl.objects.filter(name=queue, paused=False).update(
            paused=True, paused_at=timezone.now(), paused_by=by, reason=reason[:500]
        )
        if changed:
            _audit(
                by=by,
                source=source,
                action=QueueControlAction.PAUSED,
                scope=RateLimitScope.QUEUE,
                name=queue,
                before={"paused": False},
                after={"paused": True},
                reason=reason,
            )
    forget_limits()
    return bool(changed)


def queue_resume(*, queue: str, by: User | None, source: str, reason: str = "") -> int | None:
    """Resume ``queue`` and send its held jobs at once. How many were sent (the sweeper sends any
    beyond RESUME_BATCHES batches), or None when it was not paused (nothing changed or recorded)."""
    queue_check(queue)
    with transaction.atomic():
        changed = QueueControl.objects.filter(name=queue, paused=True).update(
            paused=False, paused_at=None, paused_by=None, reason=""
        )
        if changed:
            _audit(
                by=by,
                source=source,
                action=QueueControlAction.RESUMED,
                scope=RateLimitScope.QUEUE,
                name=queue,
                before={"paused": True},
                after={"paused": False},
                reason=reason,
            )
    forget_limits()
    if not changed:
        return None
    sent = 0
    for _ in range(RESUME_BATCHES):
        try:
            batch = job_dispatch_due(queues=[queue], resumed=True)
        except Exception:  # the resume is committed; the sweeper sends what is left
            logger.exception("Resumed queue %s but could not send its held jobs; the sweeper will.", queue)
            break
        sent += batch
        if batch < 500:
            break
    return sent


def _limit_state(limit: RateLimit | None) -> dict | None:
    return None if limit is None else {"limit": limit.limit, "period": limit.period}


def rate_limit_set(
    *, scope: str, name: str, limit: int, period: int, by: User | None, source: str, reason: str = ""
) -> RateLimit:
    """At most ``limit`` starts per ``period`` seconds for a queue or a task (name or alias), across
    all workers, from now on (within a second everywhere). Replaces the target's limit, if any.

    The recent starts of a changed limit still count: its ``limit`` most recent slots are kept."""
    if scope == RateLimitScope.QUEUE:
        name = queue_check(name)
    elif scope == RateLimitScope.TASK:
        name = task_check(name)
    else:
        raise InvalidInput(f"scope: must be queue or task, got {scope!r}.", fields={"scope": ["Not a scope."]})
    _check_number(limit, field="limit", maximum=RATE_LIMIT_MAX)
    _check_number(period, field="period", maximum=RATE_PERIOD_MAX)
    with transaction.atomic():
        current = RateLimit.objects.select_for_update().filter(scope=scope, name=name).first()
        before = _limit_state(current)
        if current is None:
            current = RateLimit.objects.create(
                scope=scope, name=name, limit=limit, period=period, updated_by=by, updated_at=timezone.now()
            )
        else:
            current.limit, current.period, current.backlog_until = limit, period, None
            current.updated_by, current.updated_at = by, timezone.now()
            current.save()
        _resize_slots(current)
        if before != _limit_state(current):
            _audit(
                by=by,
                source=source,
                action=QueueControlAction.LIMIT_SET,
                scope=scope,
                name=name,
                before=before,
                after=_limit_state(current),
                reason=reason,
            )
    forget_limits()
    return current


def _resize_slots(limit: RateLimit) -> None:
    """Exactly ``limit.limit`` slots: the most recently used are kept, new ones are free."""
    slots = list(RateLimitSlot.objects.filter(rate_limit=limit).order_by("-at").values_list("id", flat=True))
    if len(slots) > limit.limit:
        RateLimitSlot.objects.filter(id__in=slots[limit.limit :]).delete()
    elif len(slots) < limit.limit:
        RateLimitSlot.objects.bulk_create(
            [RateLimitSlot(rate_limit=limit, at=NEVER) for _ in range(limit.limit - len(slots))], batch_size=1000
        )


def rate_limit_clear(*, scope: str, name: str, by: User | None, source: str, reason: str = "") -> bool:
    """Remove the rate limit of a queue or a task (name or alias). True when there was one."""
    if scope == RateLimitScope.QUEUE:
        name = queue_check(name)
    elif not RateLimit.objects.filter(scope=scope, name=name).exists():  # a task gone from the catalog: by name
        name = task_check(name)
    with transaction.atomic():
        current = RateLimit.objects.select_for_update().filter(scope=scope, name=name).first()
        if current is None:
            return False
        before = _limit_state(current)
        current.delete()
        _audit(
            by=by,
            source=source,
            action=QueueControlAction.LIMIT_CLEARED,
            scope=scope,
            name=name,
            before=before,
            after=None,
            reason=reason,
        )
    forget_limits()
    return True
