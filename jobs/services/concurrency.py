"""Concurrency keys: at most ``concurrency_limit`` running jobs with the same ``concurrency_key``,
across every worker process and host (README "Concurrency keys").

- The claim (``concurrency_claim``) runs in the start's own transaction, after its UPDATE: it takes
  a transaction-scoped advisory lock on the key (PostgreSQL), then counts the key's running jobs,
  this start included (``job_concurrency_running``: a partial index holding only keyed running
  jobs). Under READ COMMITTED the count, a statement after the lock was granted, sees every start
  of the key that committed before it: two starts cannot both take the last place. Over the limit
  raises ``OverConcurrency`` and the start rolls back. SQLite serializes writers: the start's
  UPDATE holds its write lock while it counts.
- A refused job waits (``waiting.job_wait_for_key``): pending, unsent, ``concurrency_waiting_since``
  set, one timeline line per wait. It is neither failed nor counted as a retry.
- Its key frees when a running job of the key leaves running (succeeded, failed, revoked, retried,
  recovered after a dead worker): the door, after that commit, calls ``job_release_waiting`` for
  the key, which sends the key's next waiting jobs (highest priority first, then the oldest), as
  many as it has room for. The sweep calls it for every key (``recovery.job_dispatch_due``): the
  safety net for a release lost with a process that died between its commit and the send.
- Lost wake-ups: the release reads the waiting jobs under the key's lock, and a refused job is
  marked waiting under the same lock after counting again (``concurrency_room``): either the
  release sees it waiting, or it sees the room and is sent again at once.

Lock order: a job's row, then (the start) its owner's row, then the key's lock; the release takes
only the key's lock. No cycle, so no deadlock.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from ..models import Job, JobPriority, JobStatus
from ..selectors import concurrency_waiting
from .dispatch import job_dispatch
from .gates import paused_queues

logger = logging.getLogger(__name__)

RUNNING = JobStatus.RUNNING
# The advisory locks' first key (the two-integer form, a key space apart from the creators' one-bigint locks).
LOCK_CLASS = 21_0021
# Waiting jobs go first by priority, then by creation.
PRIORITY_RANK = Case(
    *(When(priority=priority, then=Value(rank)) for rank, priority in enumerate(JobPriority.values)),
    default=Value(len(JobPriority.values)),
    output_field=IntegerField(),
)


class OverConcurrency(Exception):
    """The start would run more than ``limit`` jobs with ``key``: it is rolled back."""

    def __init__(self, *, key: str, limit: int, running: int):
        super().__init__(f"concurrency key {key} at its limit {limit}")
        self.key, self.limit, self.running = key, limit, running


def _lock(key: str) -> None:
    """The key's advisory lock until the end of the transaction (PostgreSQL; SQLite serializes writes)."""
    if connection.vendor != "postgresql":
        return
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, digest])


def _running(key: str, *, most: int) -> int:
    """The key's running jobs, counted up to ``most``."""
    return Job.objects.filter(concurrency_key=key, status=RUNNING)[:most].count()


def concurrency_claim(*, key: str, limit: int) -> None:
    """Call inside the start's transaction, after its UPDATE: ``OverConcurrency`` when the key now
    runs more than ``limit`` jobs (this start included)."""
    _lock(key)
    running = _running(key, most=limit + 1)
    if running > limit:
        raise OverConcurrency(key=key, limit=limit, running=running - 1)


def concurrency_room(*, key: str, limit: int) -> bool:
    """Call inside the transaction that marks a refused job waiting: whether the key has room now
    (a job of the key finished since the refusal, and its release may have looked before the mark)."""
    _lock(key)
    return _running(key, most=limit) < limit


def job_release_waiting(*, keys: Iterable[str] | None = None, batch_size: int = 500) -> int:
    """Send the next waiting jobs of each key in ``keys`` (every key with unsent waiting jobs when
    None: the sweep), as many as the key has room for, highest priority first, then the oldest.
    Returns how many were sent. A job sent twice (two releases at once) starts once. Waiting jobs
    that could not start now anyway (a paused queue, a ``run_at`` after the next sweep: deferred by
    a rate limit or a fair share since) are passed over, so they take none of the key's room."""
    due = Q(run_at__isnull=True) | Q(run_at__lte=timezone.now() + timedelta(seconds=settings.JOB_SWEEP_INTERVAL))
    unsent = concurrency_waiting().filter(due, dispatched_at__isnull=True)
    if paused := paused_queues(fresh=False):
        unsent = unsent.exclude(queue__in=paused)
    if keys is None:
        keys = unsent.order_by().values_list("concurrency_key", flat=True).distinct()[:batch_size]
    chosen: list[Job] = []
    for key in list(keys):
        with transaction.atomic():
            _lock(key)
            candidates = unsent.filter(concurrency_key=key).order_by(PRIORITY_RANK, "created_at", "id")[:batch_size]
            running, picked = None, []
            for job in candidates:
                if running is None:
                    running = _running(key, most=job.concurrency_limit)
                if running + len(picked) >= job.concurrency_limit:
                    break
                picked.append(job)
        chosen += picked
    return len(job_dispatch(jobs=chosen)) if chosen else 0


def release_after_commit(key: str | None) -> None:
    """A running job of ``key`` has left running: send the key's next waiting job once the change
    commits (the door calls it). A failure is logged, never raised: the sweep releases it later."""
    if key:
        transaction.on_commit(lambda: job_release_waiting(keys=[key]), robust=True)
