"""A start refused: the job waits, unsent, with its timeline line (``execution.job_start`` calls these).

Its queue is paused (``job_hold``: sent again when the queue is resumed), a rate limit has no free
slot (``job_defer``: due when one frees), its owner runs their share already (``job_wait_for_share``:
tried again a little later), or its concurrency key is at its limit (``job_wait_for_key``: sent when
a job of the key leaves running). Each is one change through the door (``_state.transition``).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now

from ..models import Job, JobEventKind, JobStatus
from ._quotas import OverShare, share_wait_seconds
from ._state import event, transition
from .concurrency import OverConcurrency, concurrency_room
from .gates import Limit, queue_paused, rate_limit_defer

PENDING = JobStatus.PENDING


def job_hold(*, job_id, fence: Q) -> bool:
    """A sent job whose queue is paused waits unsent (``dispatched_at`` empty): resuming the queue
    sends it. True when held (a duplicate of a held job's message finds it unsent: not held twice)."""
    return transition(
        job_id,
        sources=[PENDING],
        where=fence & Q(dispatched_at__isnull=False) & queue_paused(),
        changes={"dispatched_at": None},
        event=event(
            job_id,
            JobEventKind.HELD,
            actor_label="worker",
            message="Held: its queue is paused. It is sent again when the queue is resumed.",
        ),
    )


def job_defer(*, job_id, fence: Q, limit: Limit) -> bool:
    """pending, due later: the job waits for a slot of ``limit``, unsent until then (the sweeper, or
    a countdown when it is due soon, sends it). True when deferred; False when the job moved on or
    the limit is gone (then it is sent again at once)."""
    with transaction.atomic():
        until = rate_limit_defer(limit)
        return transition(
            job_id,
            sources=[PENDING],
            where=fence,
            send=True,
            changes={"run_at": until or Now(), "dispatched_at": None},  # the database's clock, as the start's
            event=event(
                job_id,
                JobEventKind.RATE_LIMITED,
                actor_label="worker",
                message=f"Rate limit {limit} reached: deferred to {until:%Y-%m-%d %H:%M:%S}."
                if until
                else f"Rate limit {limit} was removed: sent again.",
                data={"scope": limit.scope, "name": limit.name, "limit": limit.limit, "period": limit.period},
            ),
        )


def job_wait_for_share(*, job_id, fence: Q, refused: OverShare) -> bool:
    """pending, due a little later: its owner already runs as many jobs as they may. It waits unsent
    and is sent again when due (a countdown, or the sweeper); a backlog waits longer between tries."""
    wait = share_wait_seconds(owner_id=refused.owner_id, cap=refused.cap)
    share = f"the share of the {refused.capacity} worker processes alive" if refused.capacity else "their limit"
    return transition(
        job_id,
        sources=[PENDING],
        where=fence,
        send=True,
        # The database's clock, which the start compares run_at with: a worker's may be off.
        changes={"run_at": Now() + timedelta(seconds=wait), "dispatched_at": None},
        event=event(
            job_id,
            JobEventKind.FAIR_SHARE,
            actor_label="worker",
            message=f"Waiting: its owner already runs {refused.running} jobs, {share} "
            f"({refused.cap}); tried again in {wait:.0f}s.",
            data={"running": refused.running, "cap": refused.cap, "capacity": refused.capacity, "wait": wait},
        ),
    )


def job_wait_for_key(*, job_id, fence: Q, refused: OverConcurrency) -> bool:
    """pending, unsent: the job waits for its concurrency key, until a running job of the key
    leaves running (``concurrency.job_release_waiting`` sends it then). Its first refusal writes the
    timeline line and ``concurrency_waiting_since``; a refusal of a job already waiting writes
    neither. When the key has room again by now (a job of it finished since the refusal), the job is
    sent again at once instead. True when it waits."""
    with transaction.atomic():
        # The job's row first, then the key's lock (the start's order): no deadlock with a duplicate start.
        if not Job.objects.select_for_update().filter(fence, id=job_id, status=PENDING).exists():
            return False
        if concurrency_room(key=refused.key, limit=refused.limit):
            transition(job_id, sources=[PENDING], where=fence, send=True, changes={"dispatched_at": None}, event=None)
            return False
        if transition(
            job_id,
            sources=[PENDING],
            where=fence & Q(concurrency_waiting_since__isnull=True),
            changes={"dispatched_at": None, "concurrency_waiting_since": Now()},
            event=event(
                job_id,
                JobEventKind.CONCURRENCY,
                actor_label="worker",
                message=f"Waiting: concurrency key {refused.key} at its limit {refused.limit}.",
                data={"key": refused.key, "limit": refused.limit, "running": refused.running},
            ),
        ):
            return True
        return transition(job_id, sources=[PENDING], where=fence, changes={"dispatched_at": None}, event=None)
