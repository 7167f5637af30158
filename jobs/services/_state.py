"""The one door for a change to a job: every write of its status, progress or heartbeat.

Each change is a conditional UPDATE that names the statuses it may start from, with its timeline
line, atomically; when it matches no row the change was illegal or lost a race, and the caller
turns that into a Conflict (``conflict``). Changes made for a running attempt are fenced on
``attempts`` too, so a worker that lost its job can never write over the next attempt.

The door decides once, per change, how it is written: on PostgreSQL a statement of ``_sql`` (the
UPDATE and its line in one statement, the hot path's fixed texts), elsewhere (SQLite, the
embedded default) the ORM in a transaction. Then it schedules what follows every change that
matched: the live publish (``jobs.live``) and, for a job that went (back) to pending, its message
(``dispatch``), both once the transaction commits. Stage modules (``creation``, ``execution``,
``operations``, ``recovery``) describe the change and call the door; they import neither ``_sql``
nor ``live``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from accounts.models import User
from taskhub.errors import ApplicationError, Conflict, NotFound

from ..live import job_changed, jobs_changed
from ..models import (
    PRIORITY_QUEUES,
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    JobEventKind,
    JobStatus,
    UniquePolicy,
    unique_policies_holding,
)
from . import _sql, _steps
from .concurrency import release_after_commit
from .dispatch import job_dispatch, job_dispatch_in_transaction, sendable
from .gates import queue_not_paused
from .labels import user_label, worker_label

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING

logger = logging.getLogger(__name__)


def event(
    job_id,
    kind: str,
    *,
    from_status: str = "",
    to_status: str = "",
    actor: User | None = None,
    actor_label: str = "",
    message: str = "",
    data: dict | None = None,
    at: datetime | None = None,
) -> JobEvent:
    """An unsaved timeline line: the one way a line is built (the door writes it with its change;
    a line that records no change, such as a message the sweeper sent, is saved by its stage)."""
    return JobEvent(
        job_id=job_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_label=actor_label or user_label(actor),
        message=message,
        data=data or {},
        at=at or timezone.now(),
    )


def transition(
    job_id,
    *,
    sources: Sequence[str],
    changes: dict[str, Any],
    event: JobEvent | None,
    where: Q | None = None,
    send: bool = False,
    returning: Sequence[str] = (),
) -> bool | dict[str, Any]:
    """One conditional UPDATE plus its timeline line, atomically. True when the row matched.

    ``send``: the job went (back) to pending; publish its message once the transaction commits.
    ``returning``: fields of the updated row to return instead of True (read by the UPDATE itself,
    no second query).

    On PostgreSQL the UPDATE and the timeline INSERT are one statement (``WITH changed AS (UPDATE …
    RETURNING …) INSERT … SELECT … FROM changed``): atomic by itself, one round trip, no
    BEGIN/COMMIT of its own (inside a caller's transaction it is part of that). Elsewhere (SQLite,
    the embedded default) the two statements run in a transaction.
    """
    status = changes.get("status")
    if status in _steps.STEP_ENDS or (status == PENDING and set(sources) - {RUNNING}):
        # workflows: a step's end (or its retry) changes its workflow in the same transaction (_step_changed).
        with transaction.atomic():
            matched = _transition(job_id, sources, changes, event, where, send, (*returning, "workflow_id"))
            if matched and matched["workflow_id"] is not None:
                _step_changed(job_id, workflow_id=matched["workflow_id"], status=status)
        if not returning:
            return bool(matched)
        return {name: value for name, value in matched.items() if name != "workflow_id"} if matched else matched
    return _transition(job_id, sources, changes, event, where, send, returning)


def _transition(job_id, sources, changes, event, where, send, returning):
    query = Job.objects.filter(id=job_id, status__in=list(sources))
    if where is not None:
        query = query.filter(where)
    changes = _releasing(changes)
    # A finished keep_latest job may carry the latest request that arrived while it ran.
    finishing = changes.get("status") in TERMINAL_STATUSES and "unique_follow_up" not in returning
    asked = [*returning, "unique_follow_up"] if finishing else list(returning)
    if event is not None and _sql.available(query.db) and _sql.can_return(query.db):
        matched = _sql.update_with_event(query, changes, asked, event)
        _after([job_id], matched, send)
    else:
        with transaction.atomic():
            matched = _update_returning(query, changes, asked) if asked else query.update(**changes)
            if matched and event is not None:
                event.save()
            _after([job_id], matched, send)
    if finishing and matched and matched.get("unique_follow_up"):
        follow_up(job_id)
    if not returning:
        return bool(matched)
    return {name: matched[name] for name in returning} if matched else matched


def _releasing(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` plus the release of the job's unique key when they leave the statuses in which
    its policy holds it (``UNIQUE_HELD_WHILE``), or request its cancel (the cancel_running policy's
    newer job takes the key at once): in the transition's own statement, so a key is released by
    the job's transitions only, never by a timer. Throttle holds its key in every status."""
    status = changes.get("status")
    if isinstance(status, str):
        keeping = unique_policies_holding(status)
    elif changes.get("cancel_requested_at") is not None:
        keeping = [UniquePolicy.THROTTLE.value]
    else:
        return changes
    held = Case(When(unique_policy__in=keeping, then=F("unique_held")), default=Value(False))
    return {**changes, "unique_held": held}


# --- workflows: the door's part for a step's end (jobs/services/_steps.py) ---
def _step_changed(job_id, *, workflow_id, status: str) -> None:
    """A step ended failed or revoked (or went back to pending from there): under ``cancel_dependents``
    its waiting descendants are revoked, the reason on each timeline; the workflow is recounted."""
    if status in _steps.STEP_ENDS and _steps.cascade_policy(workflow_id) == "cancel_dependents":
        step = Job.objects.filter(id=job_id).values_list("workflow_step", flat=True).first()
        now = timezone.now()
        line = event(
            None,
            JobEventKind.REVOKED,
            from_status=PENDING,
            to_status=JobStatus.REVOKED,
            actor_label="workflow",
            at=now,
            message=f"Cancelled: step {step!r}, which it depends on, {status}.",
        )
        _steps.revoke_waiting(Job.objects.filter(id__in=_steps.descendants([job_id])), line=line, by=None, now=now)
    _steps.refresh(workflow_id)


# --- end workflows ---


def _after(job_ids, matched, send: bool) -> None:
    """What follows a change that matched: the live publish and, for jobs (back) in pending, their
    messages, both once the transaction commits (at once when there is none)."""
    if not matched:
        return
    job_ids = list(job_ids)
    if len(job_ids) == 1:
        job_changed(job_ids[0])
    else:
        jobs_changed(job_ids)
    if send:
        transaction.on_commit(lambda: job_dispatch(jobs=Job.objects.filter(id__in=job_ids, status=PENDING)))


def _update_returning(query, changes: dict[str, Any], fields: Sequence[str]) -> dict[str, Any] | None:
    """``query.update(**changes)`` returning the updated row's ``fields`` (None when none matched)."""
    if _sql.can_return(query.db):
        return _sql.update_returning(query, changes, fields)
    # Inside transition()'s transaction: SQLite's write lock (IMMEDIATE) keeps the row as updated.
    matched = list(query.values_list("pk", flat=True))
    query.update(**changes)
    return Job.objects.filter(pk__in=matched).values(*fields).first()


def finish_running(
    job_id,
    *,
    status: str,
    fence: Q,
    actor_label: str,
    message: str = "",
    data: dict | None = None,
    **changes: Any,
) -> bool:
    """running -> succeeded / failed / revoked for the attempt ``fence`` names. True when it matched.
    Its concurrency key, if any, frees: the key's next waiting job is sent after commit."""
    now = timezone.now()
    finished = transition(
        job_id,
        sources=[RUNNING],
        where=fence,
        returning=("concurrency_key",),
        changes={"status": status, "finished_at": Now(), "heartbeat_at": Now(), **changes},  # the database's clock
        event=event(
            job_id,
            JobEventKind(status),
            from_status=RUNNING,
            to_status=status,
            actor_label=actor_label,
            at=now,
            message=message,
            data=data,
        ),
    )
    return _left_running(finished)


def _left_running(row: dict[str, Any] | None) -> bool:
    """A running job's change matched (``row``: its ``concurrency_key``): free its key after commit."""
    if row is None:
        return False
    release_after_commit(row["concurrency_key"])
    return True


def requeue_running(
    job_id,
    *,
    attempts: int,
    fence: Q,
    kind: str,
    actor_label: str,
    message: str,
    run_at: datetime | None = None,
    data: dict | None = None,
    **changes: Any,
) -> bool:
    """running -> pending as the next attempt (``attempts`` + 1), sent again after commit.

    The next attempt starts from nothing: its progress and message are the new run's to report.
    """
    requeued = transition(
        job_id,
        sources=[RUNNING],
        where=fence,
        send=True,
        returning=("concurrency_key",),
        changes={
            "status": PENDING,
            "attempts": attempts + 1,
            "run_at": run_at,
            "dispatched_at": None,
            "heartbeat_at": None,
            "progress": 0,
            "progress_meta": {},
            **changes,
        },
        event=event(
            job_id,
            kind,
            from_status=RUNNING,
            to_status=PENDING,
            actor_label=actor_label,
            message=message,
            data=data,
        ),
    )
    return _left_running(requeued)


def expire(job_id, *, expires_at: datetime, actor_label: str, fence: Q | None = None) -> bool:
    """pending -> expired: the job was not started by its ``expires_at`` (the database's clock
    decides, as the start's), and never will be. Wherever it waited (in the broker, held by a
    paused queue, deferred by a rate limit or a fair share, in a retry's backoff), with its
    ``expired`` line. True when it matched."""
    now = timezone.now()
    return transition(
        job_id,
        sources=[PENDING],
        where=Q(expires_at__isnull=False, expires_at__lte=Now()) & (fence or Q()),
        changes={"status": JobStatus.EXPIRED, "finished_at": now},
        event=event(
            job_id,
            JobEventKind.EXPIRED,
            from_status=PENDING,
            to_status=JobStatus.EXPIRED,
            actor_label=actor_label,
            at=now,
            message=f"expired: not started by {deadline_text(expires_at)}",
            data={"expires_at": expires_at.isoformat()},
        ),
    )


def deadline_text(expires_at: datetime) -> str:
    """A deadline as timeline lines write it: ISO 8601 in UTC, to the second."""
    return expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fenced_out(job_id, *, attempts: int, write: str) -> None:
    """Log a worker's write fenced off by ``attempts``: it changed 0 rows because the job is no longer
    that attempt's (re-queued by the sweeper, finished, cancelled, deleted) — typically a worker that
    was cut off or paused and writes late. One WARNING per refused write, naming the job and the
    attempt; the many-hosts bed counts them (docs/RELIABILITY.md)."""
    logger.warning(
        "Job %s: fenced write refused: the %s of attempt %d changed 0 rows (the job is no longer this run's).",
        job_id,
        write,
        attempts + 1,
    )


def conflict(job_id, action: str) -> ApplicationError:
    """The error for a transition that matched no row: NotFound, or Conflict naming the status."""
    status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if status is None:
        return NotFound(f"Job {job_id} does not exist.")
    return Conflict(f"Cannot {action} job {job_id}: it is {status}.", code="invalid_state")


# --- The stages' own changes: a new job, and a run's start, progress, heartbeat and success ---


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
        _sql.insert(jobs[0], lines[0])
    elif len(jobs) == 1:
        jobs[0].save(force_insert=True)
        lines[0].save()
    else:
        Job.objects.bulk_create(jobs)
        JobEvent.objects.bulk_create(lines)
    _sent(list(jobs), lock if in_transaction else None)


def _sent(written: list[Job], lock: int | None) -> None:
    """New rows' messages (before the commit with the creator's ``lock``, else after it) and their publish."""
    if lock is not None:
        job_dispatch_in_transaction(jobs=written, creator_lock=lock)
    else:
        transaction.on_commit(lambda: job_dispatch(jobs=written))
    # List streams show a new job at once, not only when it starts.
    _after([job.id for job in written], True, send=False)


# What a create learns of the job holding the key it asked for (uniqueness.py decides from it).
HOLDER_FIELDS = _sql.HOLDER_FIELDS


def create_unique(job: Job, line: JobEvent) -> dict[str, Any] | None:
    """(new) -> pending for a job with a unique key, inside the caller's transaction: written and
    sent as ``create`` does, unless another job of its owner holds the key. Then nothing is
    written and the holder's ``HOLDER_FIELDS`` come back, its row locked for the transaction.

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
        holder = _sql.insert_unique(job, line)
    else:
        try:
            with transaction.atomic():
                job.save(force_insert=True)
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
    _sent([job], lock)
    return None


def deduplicate(
    job_id,
    *,
    status: str,
    changes: dict[str, Any],
    actor: User | None,
    actor_label: str = "",
    message: str,
    send: bool = False,
) -> bool:
    """A create deduplicated into the job ``job_id`` (locked by ``create_unique``, still ``status``):
    its count, the policy's ``changes`` (new arguments, a later start, a stored request), and its
    one "deduplicated" timeline line, updated in place (a flood of duplicates writes one line).
    ``send``: its start moved, send its message again after commit (the old one comes too early)."""
    with transaction.atomic():
        done = Job.objects.filter(id=job_id, status=status).update(duplicates=F("duplicates") + 1, **changes)
        if not done:
            return False
        line = event(job_id, JobEventKind.DEDUPLICATED, actor=actor, actor_label=actor_label, message=message)
        kept = JobEvent.objects.filter(job_id=job_id, kind=JobEventKind.DEDUPLICATED).update(
            at=line.at, actor=line.actor, actor_label=line.actor_label, message=line.message
        )
        if not kept:
            line.save()
        _after([job_id], True, send)
    return True


def release_unique(job_id, *, message: str) -> bool:
    """A throttled key whose period has passed: its old holder (any status) lets it go, for the
    create that takes it over in the same transaction."""
    return transition(
        job_id,
        sources=list(JobStatus.values),
        where=Q(unique_held=True),
        changes={"unique_held": False},
        event=event(job_id, JobEventKind.DEDUPLICATED, actor_label="uniqueness", message=message),
    )


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


# The fields a started run needs, read by the start's UPDATE itself.
STARTED_FIELDS = _sql.STARTED_FIELDS


def start(job_id, *, worker: str, attempts: int | None, early) -> dict[str, Any] | None:
    """pending -> running when due (``run_at`` at most ``early`` ahead, by the database's clock) and
    not past its ``expires_at``, of ``attempts`` (any when None), its queue not paused; with its
    ``started`` line. The row's
    ``STARTED_FIELDS``, or None when it matched nothing."""
    at, label = timezone.now(), worker_label(worker)
    if _sql.available():
        started = _sql.start(job_id, worker=worker, attempts=attempts, early=early, at=at, actor_label=label)
        _after([job_id], started, send=False)
        return started
    # The database's clock for heartbeats: the sweeper judges staleness by the same clock.
    # A debounced job starts at its run_at, never early (_sql._START).
    due = Q(run_at__isnull=True) | Q(run_at__lte=Now()) | (Q(run_at__lte=Now() + early) & ~Q(unique_policy="debounce"))
    alive = Q(expires_at__isnull=True) | Q(expires_at__gt=Now())
    fence = Q() if attempts is None else Q(attempts=attempts)
    with transaction.atomic():
        started = _start_orm(job_id, worker, due & alive & fence, label, at)
        if started:
            _steps.started(job_id)  # workflows: its workflow is running
    return started


def _start_orm(job_id, worker, where, label, at):
    return transition(
        job_id,
        sources=[PENDING],
        # workflows: a step waiting for its parents never starts
        where=where & Q(queue_not_paused()) & Q(parents_remaining=0),
        returning=STARTED_FIELDS,
        changes={
            "status": RUNNING,
            "started_at": Now(),
            "heartbeat_at": Now(),
            "worker": worker,
            "finished_at": None,
            "concurrency_waiting_since": None,
        },
        event=event(job_id, JobEventKind.STARTED, from_status=PENDING, to_status=RUNNING, actor_label=label, at=at),
    )


def stamp_started(job_id) -> datetime | None:
    """Inside the start's transaction, once its concurrency key was claimed: ``started_at`` becomes
    the claim's moment (the database's clock). The start's UPDATE came before the claim, and a job of
    the key that finished in between would otherwise seem to overlap it."""
    if _sql.available():
        return _sql.stamp_started(job_id)
    query = Job.objects.filter(id=job_id)
    query.update(started_at=Now())
    return query.values_list("started_at", flat=True).first()


def succeed(job_id, *, attempts: int, result: Any, worker: str, progress_meta: dict | None) -> bool:
    """running -> succeeded for ``attempts``: the result, progress 100 (and ``progress_meta``, the
    run's last report, when given), with its ``succeeded`` line. Whether it matched."""
    if _sql.available():
        at, label = timezone.now(), worker_label(worker)
        done = _sql.succeed(
            job_id, attempts=attempts, result=result, at=at, actor_label=label, progress_meta=progress_meta
        )
        _after([job_id], done is not None, send=False)
        if done is not None:
            _steps.send_released(done["released"])  # workflows: the children whose last parent this was
            if done["follow_up"]:
                follow_up(job_id)
        return _left_running(done)
    held = {} if progress_meta is None else {"progress_meta": progress_meta}
    with transaction.atomic():
        done = _succeed_orm(job_id, attempts, result, worker, held)
        if done:
            _steps.send_released(_steps.release(job_id, at=timezone.now()))
    return done


def _succeed_orm(job_id, attempts, result, worker, held):
    return finish_running(
        job_id,
        status=JobStatus.SUCCEEDED,
        fence=Q(attempts=attempts),
        actor_label=worker_label(worker),
        progress=100,
        result=result,
        error="",
        error_type="",
        traceback="",
        **held,
    )


def progress(job_id, *, attempts: int | None, progress: int, meta: dict) -> bool:
    """Progress of the running, not cancelled job (of ``attempts``; any when None); stamps the
    heartbeat. A finished or cancelled job is never changed. Whether it matched."""
    if attempts is not None and _sql.available():
        written = _sql.progress(job_id, attempts=attempts, progress=progress, meta=meta)
    else:
        query = Job.objects.filter(id=job_id, status=RUNNING, cancel_requested_at__isnull=True)
        if attempts is not None:
            query = query.filter(attempts=attempts)
        written = bool(query.update(progress=progress, progress_meta=meta, heartbeat_at=Now()))
    _after([job_id], written, send=False)
    return written


def heartbeat(job_id, *, attempts: int, progress: int | None = None, meta: dict | None = None) -> bool:
    """Stamp the running, not cancelled attempt's heartbeat (the database's clock), with the
    throttled progress when given (published then: a heartbeat alone shows nothing new)."""
    changes: dict[str, Any] = {"heartbeat_at": Now()}
    if progress is not None:
        changes.update(progress=progress, progress_meta=meta or {})
    running = Job.objects.filter(id=job_id, status=RUNNING, attempts=attempts, cancel_requested_at__isnull=True)
    written = bool(running.update(**changes))
    _after([job_id], written and progress is not None, send=False)
    return written


def heartbeat_cancelling(job_id, *, attempts: int) -> None:
    """A job being cancelled keeps its heartbeat while it winds down (or waits out the grace
    period), so the sweeper does not take a live worker for a lost one."""
    Job.objects.filter(id=job_id, status=RUNNING, attempts=attempts).update(heartbeat_at=Now())
