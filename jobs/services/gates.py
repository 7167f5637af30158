"""What may start now: paused queues and rate limits, checked where a job would be sent or started.

Operators change them through ``jobs.queues.services``; this module only reads and enforces them,
so that dispatch, the start and the sweep can use it without importing the operators' services.

- A pause is read with the statement that needs it: the start's own conditional UPDATE refuses a
  job whose queue is paused (``queue_paused``, a NOT EXISTS in its WHERE), so nothing starts once
  a pause has committed; the sweep asks which queues are paused. ``job_dispatch`` (every create)
  asks only when the per-process cache says some queue is paused.
- Rate limits are cached per process for ``CACHE_SECONDS``: with no limit set, a start costs a
  dictionary lookup. A limit set (or changed) applies everywhere within that time.
- A start under a limit takes one of the limit's ``limit`` slot rows, one last used ``period``
  seconds or more before the start (one conditional UPDATE, ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL so that workers never wait for each other). Each slot row is used at most once per
  period, so no ``period``-long window holds more than ``limit`` starts, across all workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import BooleanField, Exists, Min, OuterRef, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from ..models import Job, QueueControl, RateLimit, RateLimitScope, RateLimitSlot, WorkerHeartbeat

CACHE_SECONDS = 1.0


def queue_paused(queue=None) -> Exists:
    """An expression, true when the job's queue (``queue``: an outer reference by default) is paused."""
    return Exists(QueueControl.objects.filter(name=OuterRef("queue") if queue is None else queue, paused=True))


def queue_not_paused() -> RawSQL:
    """For the start's UPDATE of ``jobs_job``: true unless the job's queue is paused. ``~queue_paused()``
    as SQL written once: compiling Django's correlated subquery at every start cost more than running it."""
    job, control = Job._meta.db_table, QueueControl._meta.db_table
    sql = f'NOT EXISTS (SELECT 1 FROM "{control}" WHERE "{control}"."name" = "{job}"."queue" AND "{control}"."paused")'
    return RawSQL(sql, (), output_field=BooleanField())


def paused_queues(queues: Iterable[str] | None = None, *, fresh: bool = True) -> set[str]:
    """The paused queues among ``queues`` (all of them by default): one query.

    ``fresh=False`` (``job_dispatch``, on every create) trusts the per-process cache when it says
    that nothing is paused, and queries only otherwise: sending a job of a queue paused in the last
    second only costs a delivery (the start holds it), while believing a resumed queue still paused
    would leave its new jobs to the sweeper."""
    if not fresh and not _cache.get().paused:
        return set()
    paused = QueueControl.objects.filter(paused=True)
    if queues is not None:
        paused = paused.filter(name__in=list(queues))
    return set(paused.values_list("name", flat=True))


@dataclass(frozen=True)
class Limit:
    id: int
    scope: str
    name: str
    limit: int
    period: int

    def __str__(self) -> str:
        return f"{self.scope} {self.name}: {self.limit} per {self.period}s"


@dataclass(frozen=True)
class _Controls:
    limits: dict[tuple[str, str], Limit]
    paused: frozenset[str]


class _ControlCache:
    """Every rate limit and the paused queues, read at most once per CACHE_SECONDS per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._controls = _Controls({}, frozenset())

    def get(self) -> _Controls:
        if time.monotonic() - self._loaded_at < CACHE_SECONDS:
            return self._controls
        with self._lock:
            if time.monotonic() - self._loaded_at >= CACHE_SECONDS:
                rows = RateLimit.objects.values_list("id", "scope", "name", "limit", "period")
                paused = QueueControl.objects.filter(paused=True).values_list("name", flat=True)
                self._controls = _Controls(
                    {(scope, name): Limit(pk, scope, name, n, p) for pk, scope, name, n, p in rows}, frozenset(paused)
                )
                self._loaded_at = time.monotonic()
        return self._controls

    def forget(self) -> None:
        self._loaded_at = float("-inf")


_cache = _ControlCache()


def any_limits() -> bool:
    """Whether any rate limit is set (from the cache): without one, a start needs no slot at all."""
    return bool(_cache.get().limits)


def limits_for(*, queue: str, task: str) -> list[Limit]:
    """The rate limits a job of this queue and task starts under (queue first), from the cache."""
    limits = _cache.get().limits
    if not limits:
        return []
    found = (limits.get((RateLimitScope.QUEUE, queue)), limits.get((RateLimitScope.TASK, task)))
    return [limit for limit in found if limit is not None]


def forget_limits() -> None:
    """Read the limits and pauses again at their next use (this process changed one)."""
    _cache.forget()


def rate_limit_claim(limit: Limit, *, at: datetime) -> bool:
    """Take a slot of ``limit`` for a start at ``at`` (the database's time of the start). True when
    one was free. Call it inside the start's transaction: the slot is given back if it rolls back."""
    free = RateLimitSlot.objects.filter(rate_limit_id=limit.id, at__lte=at - timedelta(seconds=limit.period))
    candidate = free.order_by("at").values("id")[:1]
    if connections[free.db].features.has_select_for_update_skip_locked:
        # Another worker's uncommitted claim is skipped, not waited for: it takes another slot.
        candidate = candidate.select_for_update(skip_locked=True)
    return bool(free.filter(id=Subquery(candidate)).update(at=at))


def rate_limit_defer(limit: Limit) -> datetime | None:
    """When a job refused by ``limit`` should try again, or None when the limit is gone.

    The first refused job waits for the earliest slot to free; each next one goes ``period /
    limit`` seconds after the one before (``backlog_until``), so a backlog comes back spread at the
    limit's pace instead of all at once to be refused again. Call it inside the transaction that
    defers the job."""
    with transaction.atomic():
        row = RateLimit.objects.select_for_update().filter(id=limit.id).first()
        if row is None:
            return None
        oldest = RateLimitSlot.objects.filter(rate_limit_id=row.id).aggregate(oldest=Min("at"))["oldest"]
        if oldest is None:
            return None
        free_at = oldest + timedelta(seconds=row.period)
        step = timedelta(seconds=row.period / row.limit)
        row.backlog_until = max(free_at, row.backlog_until + step) if row.backlog_until else free_at
        row.save(update_fields=["backlog_until"])
    return row.backlog_until


# --- Capacity: the worker processes alive per queue (fair shares are drawn from it) ---

CAPACITY_CACHE_SECONDS = 5.0


class _Capacity:
    """Worker processes alive for each queue (their heartbeat rows), read at most once per
    ``CAPACITY_CACHE_SECONDS`` per process: a start pays a dictionary lookup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._alive: dict[str, int] = {}

    def of(self, queue: str) -> int:
        if time.monotonic() - self._loaded_at >= CAPACITY_CACHE_SECONDS:
            with self._lock:
                if time.monotonic() - self._loaded_at >= CAPACITY_CACHE_SECONDS:
                    alive: dict[str, int] = {}
                    seen = Now() - timedelta(seconds=settings.JOB_STALE_AFTER)
                    for queues in WorkerHeartbeat.objects.filter(last_seen__gte=seen).values_list("queues", flat=True):
                        for name in queues or ():
                            alive[name] = alive.get(name, 0) + 1
                    self._alive, self._loaded_at = alive, time.monotonic()
        # The process asking runs jobs of this queue itself, before its first heartbeat too.
        return max(1, self._alive.get(queue, 0))

    def forget(self) -> None:
        self._loaded_at = float("-inf")


_capacity = _Capacity()


def workers_alive_for(queue: str) -> int:
    """Worker processes alive that consume ``queue`` (at least 1: the process asking is one)."""
    return _capacity.of(queue)


def forget_capacity() -> None:
    """Count the worker processes alive again at the next start (a test made some)."""
    _capacity.forget()
