"""Per-user quotas: how many jobs a user may have active, submit per minute, and run at once.

Checked inside the transaction that writes the jobs, under a lock on the owner's row
(``FOR NO KEY UPDATE``: it does not block the jobs' own foreign-key checks), so two requests
racing for a user's last slot cannot both take it. Staff are exempt when
``JOB_QUOTA_EXEMPT_STAFF`` is on (operators act on purpose). A user's own limits
(``max_active_jobs``, ``max_jobs_per_minute``) override the settings; 0 means no limit.

The running share (``check_running_share``) is checked at the start instead, in the start's
transaction under a lock of its own (``share_lock``: an advisory lock per owner, which writes
nothing): a job over it is not refused but waits its turn.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from rest_framework import status

from accounts.models import User
from taskhub.errors import ApplicationError

from ..models import Job, JobStatus
from . import _bound as bound
from .gates import workers_alive_for

WINDOW = timedelta(seconds=60)
PER_MINUTE, ACTIVE = "quota_per_minute", "quota_active_jobs"


class QuotaExceeded(ApplicationError):
    code = "quota_exceeded"
    status_code = status.HTTP_429_TOO_MANY_REQUESTS


@dataclasses.dataclass(frozen=True)
class Quota:
    max_active: int  # 0: no limit
    per_minute: int  # 0: no limit

    @classmethod
    def of(cls, user: User) -> Quota:
        if settings.JOB_QUOTA_EXEMPT_STAFF and user.is_staff:
            return cls(0, 0)
        max_active, per_minute = user.max_active_jobs, user.max_jobs_per_minute
        return cls(
            settings.JOB_QUOTA_MAX_ACTIVE if max_active is None else max_active,
            settings.JOB_QUOTA_PER_MINUTE if per_minute is None else per_minute,
        )


def check_quota(
    owner: User, *, count: int, now: datetime, submitted: bool = True, runnable: int | None = None, written: int = 0
) -> None:
    """Refuse (429) ``count`` more jobs for ``owner``; call inside the writing transaction.

    ``submitted`` says the jobs are new submissions (counted per minute); a manual retry makes
    a job active again without submitting a new one. ``runnable``: how many of them count as
    active (default all): a workflow's steps that wait for their parents do not, until their
    release (which is never refused: it is not a submission). ``written``: how many of the ``count``
    this transaction has written already (a keyed create is checked once its insert is known to be a
    new job: a duplicate creates nothing and is never refused). The owner's row is locked, then both
    are counted in one statement (each count stops at its limit: a user far over it costs no more).
    """
    quota = Quota.of(owner)
    per_minute = quota.per_minute if submitted else 0
    runnable = count if runnable is None else runnable
    if not quota.max_active and not per_minute:
        return
    for limit, code, what, asked in (
        (per_minute, PER_MINUTE, "new jobs per minute", count),
        (quota.max_active, ACTIVE, "active jobs", runnable),
    ):
        if limit and asked > limit:
            raise QuotaExceeded(
                f"Quota exceeded: this request asks for {asked} jobs; the limit is {limit} {what} per user.", code=code
            )
    submitted_count, active = _lock_and_count(
        owner,
        since=now - WINDOW,
        per_minute=per_minute and per_minute + written,
        active=quota.max_active and quota.max_active + written,
    )
    submitted_count, active = max(0, submitted_count - written), max(0, active - written)
    if per_minute and submitted_count + count > per_minute:
        # Room comes back as the oldest counted jobs leave the 60-second window.
        recent = Job.objects.filter(owner=owner, created_at__gt=now - WINDOW).order_by("-created_at").running_apart()
        free_at = recent.values_list("created_at", flat=True)[per_minute - count + written]
        wait = max(1, math.ceil((free_at + WINDOW - now).total_seconds()))
        raise QuotaExceeded(
            f"Quota exceeded: at most {per_minute} new jobs per minute per user; you submitted "
            f"{submitted_count} in the last 60 seconds and asked for {count} more. Try again in {wait} seconds.",
            code=PER_MINUTE,
            headers={"Retry-After": str(wait)},
        )
    if quota.max_active and runnable and active + runnable > quota.max_active:
        raise QuotaExceeded(
            f"Quota exceeded: at most {quota.max_active} active (pending or running) jobs per user; you have "
            f"{active} and asked for {runnable} more. Wait for some to finish or cancel some.",
            code=ACTIVE,
        )


_JOB, _USER = Job._meta.db_table, User._meta.db_table
# Each count stops at its limit (LIMIT 0 counts nothing; a sum of two, capped by the caller). Written
# once: building the counts through the ORM at every request was a quarter of a create's CPU. Each
# reads one index: the submitted jobs not running job_owner_created (owner first), the running ones
# job_running (migration 0026: the list orders leave running jobs out); the active ones the pending
# jobs of job_pending (owner first) and the running ones of job_running. A workflow step waiting for
# its parents (parents_remaining > 0) is not active: it cannot run (checked on the rows the index finds).
_COUNT = f"""
SELECT
    (SELECT COUNT(*) FROM (SELECT 1 FROM "{_JOB}" WHERE "owner_id" = %(owner)s AND "created_at" > %(since)s
        AND NOT ("status" = '{JobStatus.RUNNING}') LIMIT %(submitted)s) AS submitted)
    + (SELECT COUNT(*) FROM (SELECT 1 FROM "{_JOB}" WHERE "owner_id" = %(owner)s AND "created_at" > %(since)s
        AND "status" = '{JobStatus.RUNNING}' LIMIT %(submitted)s) AS submitted_running),
    (SELECT COUNT(*) FROM (SELECT 1 FROM "{_JOB}" WHERE "owner_id" = %(owner)s AND "status" = '{JobStatus.PENDING}'
        AND "parents_remaining" = 0 LIMIT %(active)s) AS active)
    + (SELECT COUNT(*) FROM (SELECT 1 FROM "{_JOB}" WHERE "owner_id" = %(owner)s AND "status" = '{JobStatus.RUNNING}'
        AND "parents_remaining" = 0 LIMIT %(active)s) AS active_running)
"""
_LOCK = f'SELECT 1 FROM "{_USER}" WHERE "id" = %s FOR NO KEY UPDATE'


def _counting_cursor():
    """On PostgreSQL a cursor binding on the server (``_bound``): these counts run at every create and
    every start, and prepared (DATABASE_PREPARED_STATEMENTS) they are no longer planned at each call.
    Django's own elsewhere (SQLite)."""
    return bound.cursor() if connection.vendor == "postgresql" else connection.cursor()


def _lock_and_count(owner: User, *, since: datetime, per_minute: int, active: int) -> tuple[int, int]:
    """Lock ``owner``'s row, then count the jobs submitted after ``since`` (up to ``per_minute``)
    and the active ones (up to ``active``).

    Two statements: under READ COMMITTED each statement reads what was committed when it began,
    so the counts must come after the lock is granted, not in the statement that waited for it.
    The lock is ``FOR NO KEY UPDATE``: the jobs' own foreign-key checks do not wait for it. (SQLite,
    the embedded default, has no row locks: its writes are serialized anyway.)
    """
    with _counting_cursor() as cursor:
        if connection.features.has_select_for_no_key_update:
            cursor.execute(_LOCK, [owner.pk])
        since = connection.ops.adapt_datetimefield_value(since)  # as the ORM stores it (SQLite: UTC text)
        cursor.execute(_COUNT, {"owner": owner.pk, "since": since, "submitted": per_minute, "active": active})
        submitted, active_count = cursor.fetchone()
    return min(submitted, per_minute), min(active_count, active)


# --- Fair shares: how many jobs one user may run at once ---


class OverShare(Exception):
    """The start would give its owner more running jobs than their share: it is rolled back."""

    def __init__(self, *, owner_id: int, running: int, cap: int, capacity: int | None):
        super().__init__(f"user {owner_id} runs {running} jobs; the cap is {cap}")
        self.owner_id, self.running, self.cap, self.capacity = owner_id, running, cap, capacity


def running_cap(*, is_staff: bool, own: int | None, queue: str) -> tuple[int, int | None] | None:
    """A user's cap on running jobs and the capacity it was drawn from (None when set as a number),
    or None when there is no cap."""
    if settings.JOB_QUOTA_EXEMPT_STAFF and is_staff:
        return None
    if own is not None:
        return (own, None) if own else None
    setting = str(settings.JOB_QUOTA_MAX_RUNNING).strip().lower()
    if setting != "auto":
        return (int(setting), None) if int(setting) else None
    alive = workers_alive_for(queue)
    return max(1, math.floor(alive * settings.JOB_FAIR_SHARE)), alive


# Starts of one owner's jobs take turns on a transaction-scoped advisory lock keyed by the owner
# (class SHARE_LOCK_CLASS, the owner's id): held until the start commits or rolls back, written
# nowhere. A lock on the owner's row (FOR NO KEY UPDATE, as before) wrote a WAL record and dirtied
# the user's page at every start: 54 of a job's 2,374 WAL bytes (bench/throughput.py). Creates lock
# the row itself (``_lock_and_count``): they count active jobs, which a start does not change.
SHARE_LOCK_CLASS = 0x7461736B  # "task"; the other int4 is the owner's id (its low 31 bits)


def share_lock(owner_id_sql: str) -> str:
    """SQL taking the share's advisory lock of the owner whose id is ``owner_id_sql`` (PostgreSQL)."""
    return f"pg_advisory_xact_lock({SHARE_LOCK_CLASS}, CAST(MOD({owner_id_sql}, 2147483648) AS integer))"


_OWNER = f'SELECT "is_staff", "max_running_jobs" FROM "{_USER}" WHERE "id" = %s'
_OWNER_LOCKED = f'SELECT "is_staff", "max_running_jobs", {share_lock("id")} FROM "{_USER}" WHERE "id" = %s'
_RUNNING = f"""
SELECT COUNT(*) FROM (
    SELECT 1 FROM "{_JOB}" WHERE "owner_id" = %s AND "status" = '{JobStatus.RUNNING}' LIMIT %s
) AS running
"""


def check_running_share(*, owner_id: int, queue: str, owner: dict | None = None) -> None:
    """Call inside the start's transaction, after its UPDATE: holding the owner's share lock
    (``share_lock``), count their running jobs (this start included, up to the cap + 1);
    ``OverShare`` when over their cap.

    ``owner``: the owner's ``is_staff`` and ``max_running_jobs``, as the start's own statement read
    them while taking the lock (PostgreSQL); without it the lock is taken and the row read here. The
    lock makes starts of one user's jobs take turns, so two workers starting them at the same moment
    cannot both take the last place; other users' starts do not wait for it. Counted in a statement
    of its own, after the lock is granted (READ COMMITTED: a statement sees what was committed when
    it began). An owner without a cap costs nothing more than the start.
    """
    with _counting_cursor() as cursor:
        if owner is None:  # SQLite has no row or advisory locks: its writes are serialized anyway
            cursor.execute(_OWNER_LOCKED if connection.vendor == "postgresql" else _OWNER, [owner_id])
            row = cursor.fetchone()
            if row is None:
                return
            owner = {"is_staff": row[0], "max_running_jobs": row[1]}
        cap = running_cap(is_staff=owner["is_staff"], own=owner["max_running_jobs"], queue=queue)
        if cap is None:
            return
        cursor.execute(_RUNNING, [owner_id, cap[0] + 1])
        running = cursor.fetchone()[0]
    if running > cap[0]:
        raise OverShare(owner_id=owner_id, running=running - 1, cap=cap[0], capacity=cap[1])


def share_wait_seconds(*, owner_id: int, cap: int) -> float:
    """How long a job over its owner's share waits before it is tried again: the owner's pending
    jobs over their share, one second each, at least 1 s and at most ``JOB_FAIR_SHARE_MAX_WAIT``."""
    most = settings.JOB_FAIR_SHARE_MAX_WAIT
    backlog = Job.objects.filter(owner_id=owner_id, status=JobStatus.PENDING, parents_remaining=0)
    backlog = backlog[: int(most * cap) + 1].count()
    return min(most, max(1.0, backlog / max(cap, 1)))
