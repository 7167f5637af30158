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

The door is this module and three parts of it, each re-exported here (callers keep ``_state.X``;
stage modules import none of them): ``_state_effects`` (``event``, the one builder of a timeline
line, and what follows a change after commit), ``_state_create`` (a new job, keyed or not, the
unique keys' ``deduplicate`` / ``deduplicate_many`` and keep_latest's ``follow_up``, ``wait_for_creator``) and
``_state_running`` (a running attempt's progress and heartbeat, which change no status).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Now

from taskhub.errors import ApplicationError, Conflict, NotFound

from ..models import (
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    JobEventKind,
    JobStatus,
    UniquePolicy,
    unique_policies_holding,
)
from . import _sql, _steps
from ._state_create import Deduplication as Deduplication
from ._state_create import create as create
from ._state_create import create_unique as create_unique
from ._state_create import create_unique_many as create_unique_many
from ._state_create import deduplicate as deduplicate
from ._state_create import deduplicate_many as deduplicate_many
from ._state_create import follow_up
from ._state_create import wait_for_creator as wait_for_creator
from ._state_effects import after_change, event, materialize, materializes
from ._state_effects import deadline_text as deadline_text
from ._state_running import fenced_out as fenced_out
from ._state_running import heartbeat as heartbeat
from ._state_running import heartbeat_cancelling as heartbeat_cancelling
from ._state_running import progress as progress
from ._state_running import stamp_started as stamp_started
from .concurrency import release_after_commit
from .gates import queue_not_paused

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


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
    if materializes(changes):
        # The lines the row derives so far become real rows first (jobs.timeline), in its transaction.
        with transaction.atomic():
            materialize(query)
            return _transition_write(job_id, query, _releasing(changes), event, send, returning)
    return _transition_write(job_id, query, _releasing(changes), event, send, returning)


def _transition_write(job_id, query, changes, event, send, returning):
    # A finished keep_latest job may carry the latest request that arrived while it ran: its
    # follow-up is written in the finish's own transaction, so a finish never commits without it.
    finishing = changes.get("status") in TERMINAL_STATUSES and "unique_follow_up" not in returning
    if finishing:
        with transaction.atomic(savepoint=False):
            matched = _write(query, changes, [*returning, "unique_follow_up"], event, job_id, send)
            if matched and matched.get("unique_follow_up"):
                follow_up(job_id)
    else:
        matched = _write(query, changes, list(returning), event, job_id, send)
    if not returning:
        return bool(matched)
    return {name: matched[name] for name in returning} if matched else matched


def _write(query, changes: dict[str, Any], asked: list[str], event: JobEvent | None, job_id, send: bool):
    if event is not None and _sql.available(query.db) and _sql.can_return(query.db):
        matched = _sql.update_with_event(query, changes, asked, event)
        after_change([job_id], matched, send)
        return matched
    with transaction.atomic():
        matched = _update_returning(query, changes, asked) if asked else query.update(**changes)
        if matched and event is not None:
            event.save()
        after_change([job_id], matched, send)
    return matched


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
        line = event(
            None,
            JobEventKind.REVOKED,
            from_status=PENDING,
            to_status=JobStatus.REVOKED,
            actor_label="workflow",
            message=f"Cancelled: step {step!r}, which it depends on, {status}.",
        )
        _steps.revoke_waiting(Job.objects.filter(id__in=_steps.descendants([job_id])), line=line, by=None)
    _steps.refresh(workflow_id)


# --- end workflows ---


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
    Its concurrency key, if any, frees: the key's next waiting job is sent after commit. Its time is
    the database's clock, the row's and the line's (one statement on PostgreSQL: the same time)."""
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
    run_at: datetime | Combinable | None = None,
    data: dict | None = None,
    **changes: Any,
) -> bool:
    """running -> pending as the next attempt (``attempts`` + 1), sent again after commit.
    ``run_at``: when it is due (an expression of the database's clock for a retry's backoff).

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
    return transition(
        job_id,
        sources=[PENDING],
        where=Q(expires_at__isnull=False, expires_at__lte=Now()) & (fence or Q()),
        changes={"status": JobStatus.EXPIRED, "finished_at": Now()},
        event=event(
            job_id,
            JobEventKind.EXPIRED,
            from_status=PENDING,
            to_status=JobStatus.EXPIRED,
            actor_label=actor_label,
            message=f"expired: not started by {deadline_text(expires_at)}",
            data={"expires_at": expires_at.isoformat()},
        ),
    )


def conflict(job_id, action: str) -> ApplicationError:
    """The error for a transition that matched no row: NotFound, or Conflict naming the status."""
    status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if status is None:
        return NotFound(f"Job {job_id} does not exist.")
    return Conflict(f"Cannot {action} job {job_id}: it is {status}.", code="invalid_state")


# Unique keys (the creates that take and find them: _state_create).
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


# --- The stages' own changes: a run's start and success (a new job: _state_create; progress: _state_running) ---


# The fields a started run needs, read by the start's UPDATE itself.
STARTED_FIELDS = _sql.STARTED_FIELDS


def start(job_id, *, worker: str, attempts: int | None, early) -> dict[str, Any] | None:
    """pending -> running when due (``run_at`` at most ``early`` ahead, by the database's clock) and
    not past its ``expires_at``, of ``attempts`` (any when None), its queue not paused; its
    ``started`` line derived from the row (``jobs.timeline``). The row's
    ``STARTED_FIELDS``, or None when it matched nothing."""
    if _sql.available():
        started = _sql.start(job_id, worker=worker, attempts=attempts, early=early)
        after_change([job_id], started, send=False)
        return started
    # The database's clock for heartbeats: the sweeper judges staleness by the same clock.
    # A debounced job starts at its run_at, never early (_sql._START).
    due = Q(run_at__isnull=True) | Q(run_at__lte=Now()) | (Q(run_at__lte=Now() + early) & ~Q(unique_policy="debounce"))
    alive = Q(expires_at__isnull=True) | Q(expires_at__gt=Now())
    fence = Q() if attempts is None else Q(attempts=attempts)
    with transaction.atomic():
        started = _start_orm(job_id, worker, due & alive & fence)
        if started:
            _steps.started(job_id)  # workflows: its workflow is running
    return started


def _start_orm(job_id, worker, where):
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
        event=None,  # derived from the row (jobs.timeline)
    )


def succeed(job_id, *, attempts: int, result: Any, worker: str, progress_meta: dict | None) -> bool:
    """running -> succeeded for ``attempts``: the result, progress 100 (and ``progress_meta``, the
    run's last report, when given); its ``succeeded`` line derived from the row. Whether it matched."""
    if _sql.available():
        # One statement, refused for a job holding a keep_latest request: that finish goes the ORM
        # way below, one transaction with its follow-up (as a fenced-off success, which matches nothing).
        done = _sql.succeed(job_id, attempts=attempts, result=result, progress_meta=progress_meta)
        if done is not None:
            after_change([job_id], True, send=False)
            _steps.send_released(done["released"])  # workflows: the children whose last parent this was
            return _left_running(done)
    held = {} if progress_meta is None else {"progress_meta": progress_meta}
    with transaction.atomic():
        done = _succeed_orm(job_id, attempts, result, held)
        if done:
            _steps.send_released(_steps.release(job_id, at=Now()))  # the database's clock, as the step's end
    return done


def _succeed_orm(job_id, attempts, result, held):
    changes = {"progress": 100, "result": result, "error": "", "error_type": "", "traceback": "", **held}
    finished = transition(
        job_id,
        sources=[RUNNING],
        where=Q(attempts=attempts),
        returning=("concurrency_key",),
        changes={"status": JobStatus.SUCCEEDED, "finished_at": Now(), "heartbeat_at": Now(), **changes},
        event=None,  # derived from the row (jobs.timeline), as the one statement's
    )
    return _left_running(finished)
