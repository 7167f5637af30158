"""The door's part for a new job: (new) -> pending, every way one is written.

``create`` (jobs without a unique key, one statement each on PostgreSQL), ``create_unique`` and
``create_unique_many`` (a keyed create: written, or the job holding the key found and locked,
``HOLDER_FIELDS``), ``deduplicate`` (a keyed create that made no job: the holder's count, changes
and its one "deduplicated" line) and ``deduplicate_many`` (a bulk request's, one statement),
``follow_up`` (keep_latest's one job after a finish, written in the finish's own transaction by
``_state.transition``); and the other side of a create's early
message: ``wait_for_creator``, a worker waiting for the creating transaction. Re-exported by
``_state``, the one door stage modules call (they never import this module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from accounts.models import User

from ..models import PRIORITY_QUEUES, TERMINAL_STATUSES, Job, JobEvent, JobEventKind, JobStatus
from ..timeline import reproduces
from . import _sql, _sql_bulk
from ._state_effects import after_change, event, materialize, materializes
from .dispatch import job_dispatch, job_dispatch_in_transaction, sendable

PENDING = JobStatus.PENDING


def create(jobs: Sequence[Job], lines: Sequence[JobEvent]) -> None:
    """(new) -> pending: write ``jobs`` and their ``created`` lines inside the caller's transaction,
    and send their messages; publish them for live streams once it commits. One job on PostgreSQL
    is one statement.

    When the caller's transaction is the outermost (an API request, a bulk create) on PostgreSQL,
    the messages go before its commit and the rows are written already marked sent
    (``dispatch.job_dispatch_in_transaction``): no second write per job, and no moment after the
    commit at which a dying process leaves a job unsent. Inside a larger transaction (the
    django.tasks backend called from the application's own transaction, a test's), the commit may
    be far away: the messages go after it and the send time is written then (``job_dispatch``).
    """
    in_transaction = _sql.available() and _sql.outermost_transaction()
    if in_transaction:
        now = timezone.now()
        for job in sendable(list(jobs), now=now):
            job.dispatched_at = now
        lock = _sql.creator_lock()
    if len(jobs) == 1 and _sql.available():
        _sql.insert(jobs[0], _written(jobs[0], lines[0]))
    elif len(jobs) == 1:
        jobs[0].save(force_insert=True)
        if _written(jobs[0], lines[0]):
            lines[0].save()
    else:
        if _sql.available():
            _sql_bulk.insert_many(list(jobs))
        else:
            Job.objects.bulk_create(jobs)
        JobEvent.objects.bulk_create([line for job, line in zip(jobs, lines, strict=True) if _written(job, line)])
    _sent(list(jobs), lock if in_transaction else None)


def _written(job: Job, line: JobEvent) -> JobEvent | None:
    """The ``created`` line to write for a new ``job``: None when its row derives it (``jobs.timeline``)."""
    return None if reproduces(job, line) else line


def _sent(written: list[Job], lock: int | None) -> None:
    """New rows' messages (before the commit with the creator's ``lock``, else after it) and their publish."""
    if lock is not None:
        job_dispatch_in_transaction(jobs=written, creator_lock=lock)
    else:
        transaction.on_commit(lambda: job_dispatch(jobs=written))
    # List streams show a new job at once, not only when it starts.
    after_change([job.id for job in written], True, send=False)


# What a create learns of the job holding the key it asked for (uniqueness.py decides from it).
HOLDER_FIELDS = _sql.HOLDER_FIELDS


def create_unique(job: Job, line: JobEvent, *, admit: Callable[[int], None] | None = None) -> dict[str, Any] | None:
    """(new) -> pending for a job with a unique key, inside the caller's transaction: written and
    sent as ``create`` does, unless another job of its owner holds the key. Then nothing is
    written and the holder's ``HOLDER_FIELDS`` come back, its row locked for the transaction.
    ``admit``: called with the number of jobs written (1) once the job is written, before it is sent
    (the owner's quota: it raises to refuse the new job, and the caller's transaction rolls back; a
    duplicate is never refused).

    PostgreSQL: one ``INSERT … ON CONFLICT (owner, unique_key) WHERE held DO UPDATE … RETURNING``
    (with the ``created`` line only when inserted): no window between looking and writing,
    whatever the number of concurrent creates. SQLite: the insert in a savepoint; a conflict reads
    the holder (SQLite's write lock, taken by the failed insert, is held to the commit)."""
    lock = None
    if _sql.available() and _sql.outermost_transaction():
        now = timezone.now()
        for ready in sendable([job], now=now):
            ready.dispatched_at = now
        lock = _sql.creator_lock()
    if _sql.available():
        holder = _sql.insert_unique(job, _written(job, line))
    else:
        try:
            with transaction.atomic():
                job.save(force_insert=True)
                if _written(job, line):
                    line.save()
            holder = None
        except IntegrityError:
            holder = (
                Job.objects.filter(owner_id=job.owner_id, unique_key=job.unique_key, unique_held=True)
                .values(*HOLDER_FIELDS)
                .first()
            )
            if holder is None:
                raise
    if holder is not None:
        job.dispatched_at = None
        return holder
    if admit is not None:
        admit(1)
    _sent([job], lock)
    return None


def create_unique_many(
    jobs: list[Job], lines: list[JobEvent], *, admit: Callable[[int], None] | None = None
) -> list[dict[str, Any] | None]:
    """``create_unique`` for a bulk request's keyed jobs (one owner, distinct keys, in key order):
    each job's holder, or None when it was written. PostgreSQL: one statement for them all
    (``_sql_bulk``), then ``admit`` once for the jobs written, then their messages."""
    if not jobs or not _sql.available():
        return [create_unique(job, line, admit=admit) for job, line in zip(jobs, lines, strict=True)]
    lock = None
    if _sql.outermost_transaction():
        now = timezone.now()
        for ready in sendable(list(jobs), now=now):
            ready.dispatched_at = now
        lock = _sql.creator_lock()
    holders = _sql_bulk.insert_unique_many(
        jobs, [line for job, line in zip(jobs, lines, strict=True) if _written(job, line)]
    )
    written = [job for job, holder in zip(jobs, holders, strict=True) if holder is None]
    for job, holder in zip(jobs, holders, strict=True):
        if holder is not None:
            job.dispatched_at = None
    if written and admit is not None:
        admit(len(written))
    if written:
        _sent(written, lock)
    return holders


def deduplicate(
    job_id,
    *,
    status: str,
    changes: dict[str, Any],
    actor: User | None,
    actor_label: str = "",
    message: str,
    send: bool = False,
    count: int = 1,
) -> bool:
    """A create deduplicated into the job ``job_id`` (locked by ``create_unique``, still ``status``):
    its count, the policy's ``changes`` (new arguments, a later start, a stored request), and its
    one "deduplicated" timeline line, updated in place (a flood of duplicates writes one line).
    ``send``: its start moved, send its message again after commit (the old one comes too early).
    ``count``: the duplicates written at once (a bulk request's of this holder)."""
    with transaction.atomic():
        if materializes(changes):
            materialize(Job.objects.filter(id=job_id, status=status))  # its created line says the old ones
        done = Job.objects.filter(id=job_id, status=status).update(duplicates=F("duplicates") + count, **changes)
        if not done:
            return False
        line = event(job_id, JobEventKind.DEDUPLICATED, actor=actor, actor_label=actor_label, message=message)
        kept = JobEvent.objects.filter(job_id=job_id, kind=JobEventKind.DEDUPLICATED).update(
            at=Now(),
            actor=line.actor,
            actor_label=line.actor_label,
            message=line.message,  # as a new line's
        )
        if not kept:
            line.save()
        after_change([job_id], True, send)
    return True


class Deduplication(NamedTuple):
    """What the duplicates of one bulk request did to one holder (``deduplicate_many``)."""

    job_id: Any
    status: str  # the holder's, locked by the create that found it
    count: int  # its duplicates in the request
    changes: dict[str, Any]  # as ``deduplicate``'s, the later duplicate's where two change one field
    message: str  # its "deduplicated" line's (the last duplicate's)
    send: bool  # its start moved (debounce)


def deduplicate_many(holders: list[Deduplication], *, actor: User | None) -> None:
    """``deduplicate`` for the holders a bulk request's duplicates found (distinct, each locked by
    ``create_unique_many`` or ``create_unique``): on PostgreSQL one statement for all of them
    (their counts, changes and lines: ``_sql_bulk.deduplicate_many``), whatever their number."""
    if not holders:
        return
    if not _sql.available():
        for holder in holders:
            deduplicate(
                holder.job_id,
                status=holder.status,
                changes=holder.changes,
                actor=actor,
                message=holder.message,
                send=holder.send,
                count=holder.count,
            )
        return
    if moved := [holder.job_id for holder in holders if materializes(holder.changes)]:
        materialize(Job.objects.filter(id__in=moved))  # their created lines say the old ones
    lines = [event(holder.job_id, JobEventKind.DEDUPLICATED, actor=actor, message=holder.message) for holder in holders]
    done = _sql_bulk.deduplicate_many([holder[:4] for holder in holders], lines)
    for send in (False, True):
        if changed := [holder.job_id for holder in holders if holder.job_id in done and holder.send == send]:
            after_change(changed, True, send)


def follow_up(job_id) -> Job | None:
    """keep_latest: a finished job's stored latest request becomes one new job with its key, once
    (the request is claimed under the row's lock). When a newer job holds the key already, that
    newer request wins and nothing is created."""
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(id=job_id, unique_follow_up__isnull=False).first()
        if row is None or row.status not in TERMINAL_STATUSES:
            return None
        request = row.unique_follow_up
        Job.objects.filter(id=job_id).update(unique_follow_up=None)
        now = timezone.now()
        priority = request.get("priority") or row.priority
        job = Job(
            owner_id=row.owner_id,
            name=row.name,
            task_type=row.task_type,
            celery_task_name=row.celery_task_name,
            args=request["args"],
            kwargs=request["kwargs"],
            priority=priority,
            queue=PRIORITY_QUEUES[priority],
            max_retries=row.max_retries,
            created_at=now,
            unique_key=row.unique_key,
            unique_policy=row.unique_policy,
            unique_held=True,
            # The finished job's concurrency key goes on: a duplicate changes a job's arguments and
            # priority, never its key (replace and debounce keep the holder's too).
            concurrency_key=row.concurrency_key,
            concurrency_limit=row.concurrency_limit,
        )
        line = event(
            job.id,
            JobEventKind.CREATED,
            to_status=PENDING,
            actor_label=request.get("by_label") or "system",
            at=now,
            message=f"Created as the follow-up of job {job_id} (keep_latest) on queue {job.queue}.",
        )
        line.actor_id = request.get("by")
        if create_unique(job, line) is not None:
            return None
    return job


# How long a worker waits for the transaction that created a job it has a message for (publishing
# the rest of a bulk request and committing): past that, the message is dropped and the sweeper's
# lost-message check (JOB_LOST_AFTER) sends the job again if its creator did commit.
CREATOR_WAIT_SECONDS = 10.0


def wait_for_creator(key: int) -> bool:
    """Wait for the transaction that created a job and sent its message before committing
    (``create``): whether it has ended (committed or rolled back), so that the job's row, if any,
    is now visible."""
    return _sql.available() and _sql.wait_for_creator(key, timeout=CREATOR_WAIT_SECONDS)
