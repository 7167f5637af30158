"""What the task base calls inside the worker while a job runs: start, heartbeat, progress, finish.

Every write after the start is fenced on the ``attempts`` value the run started with, so a
worker whose job was re-queued, finished or deleted meanwhile learns it (``RunState.GONE``)
instead of writing over the next attempt.
"""

from __future__ import annotations

import enum
import functools
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from taskhub.errors import InvalidInput, NotFound

from ..catalog import catalog
from ..models import Job, JobEventKind, JobStatus
from . import _state
from ._json import json_storable
from ._quotas import OverShare, check_running_share
from ._state import conflict, deadline_text, event, finish_running, requeue_running, transition
from .concurrency import OverConcurrency, concurrency_claim
from .gates import Limit, any_limits, limits_for, queue_paused, rate_limit_claim
from .labels import attempt_label, worker_label
from .waiting import job_defer, job_hold, job_wait_for_key, job_wait_for_share

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


class RunState(enum.Enum):
    """What a running task learns when it writes progress or a heartbeat."""

    OK = "ok"
    CANCEL_REQUESTED = "cancel_requested"
    GONE = "gone"  # no longer this attempt's to run: finished, revoked, re-queued or deleted


# A delivery this much before the job's run_at (by the database's clock) is still taken as on time.
EARLY_DELIVERY = timedelta(seconds=2)


def job_start(*, job_id, worker: str, attempts: int | None = None, creator_lock: int | None = None) -> Job | None:
    """pending -> running. None when the job is not pending (cancelled, already running, gone),
    when the message is of another attempt (``attempts``, from its headers), or when it came
    before the job's ``run_at`` (a duplicate of a retry still waiting for its backoff). A refused
    early delivery loses nothing: the sweeper sends a due job whose message is gone.

    Queue control (``gates``) may refuse it too, and then the job waits without a message, to be
    sent again: its queue is paused (it is held, ``dispatched_at`` empty, until the queue is
    resumed), or a rate limit has no free slot (it is deferred to when one frees, ``run_at``).
    So may its owner's fair share (``_quotas.check_running_share``): when they already run as many
    jobs as they may, it is deferred a little and tried again (nothing fails). So may its concurrency
    key (``concurrency``): at its limit, the job waits unsent until a job of the key finishes.

    A job past its ``expires_at`` never starts: the message that finds it ends it ``expired``
    (``_state.expire``), wherever it waited before.

    A message sent before its job's transaction committed (``creator_lock``, ``_state.create``) can
    arrive before the row is visible: the start waits for that transaction to end and looks again;
    when it rolled back there is no job and the message is dropped.

    The job comes back with the fields a run needs (``attempts``, from the UPDATE itself); the others
    are deferred: read from the database on first access.
    """
    fence = Q() if attempts is None else Q(attempts=attempts)
    try:
        started = _start(job_id, worker, attempts)
        if not started:
            # Why not: one read. A job no longer pending (or of another attempt) is simply skipped.
            row = Job.objects.filter(fence, id=job_id).values("status", "expires_at", paused=queue_paused()).first()
            if row is None and creator_lock is not None and _state.wait_for_creator(creator_lock):
                row = Job.objects.filter(fence, id=job_id).values("status", "expires_at", paused=queue_paused()).first()
            if row is None or row["status"] != PENDING:
                return None
            if row["expires_at"] is not None and _state.expire(
                job_id, expires_at=row["expires_at"], actor_label=worker_label(worker), fence=fence
            ):
                return None
            if row["paused"]:
                job_hold(job_id=job_id, fence=fence)
                return None
            # Not due yet, or its queue was resumed between the two: once more, then skipped.
            started = _start(job_id, worker, attempts)
    except _NoSlot as refused:
        job_defer(job_id=job_id, fence=fence, limit=refused.limit)
        return None
    except OverShare as refused:
        job_wait_for_share(job_id=job_id, fence=fence, refused=refused)
        return None
    except OverConcurrency as refused:
        job_wait_for_key(job_id=job_id, fence=fence, refused=refused)
        return None
    if not started:
        return None
    known = {"id": Job._meta.pk.to_python(job_id), "status": RUNNING, "worker": worker, "finished_at": None, **started}
    known_names = frozenset(known)
    return Job.from_db(Job.objects.db, known_names, [known[name] for name in _in_model_order(known_names)])


@functools.cache
def _in_model_order(known: frozenset[str]) -> tuple[str, ...]:
    """The columns of ``known`` that are the job's, in the model's order (``from_db`` takes their
    values in it): the same few sets at every start, worked out once."""
    return tuple(field.attname for field in Job._meta.concrete_fields if field.attname in known)


class _NoSlot(Exception):
    def __init__(self, limit: Limit):
        super().__init__(str(limit))
        self.limit = limit


def _start(job_id, worker: str, attempts: int | None) -> dict[str, Any] | None:
    """The start's conditional UPDATE, refused when the job is not due or its queue is paused, then
    in the same transaction its concurrency key (``OverConcurrency``), its owner's fair share
    (``OverShare``) and a slot of each rate limit it starts under (``_NoSlot``): each rolls the start back."""
    limited = any_limits()
    with transaction.atomic():
        started = _state.start(job_id, worker=worker, attempts=attempts, early=EARLY_DELIVERY)
        if started and started["concurrency_key"] is not None:
            concurrency_claim(key=started["concurrency_key"], limit=started["concurrency_limit"])
            started["started_at"] = _state.stamp_started(job_id)
        if started:
            check_running_share(owner_id=started["owner_id"], queue=started["queue"], owner=started.get("owner"))
        if started and limited:
            for limit in limits_for(queue=started["queue"], task=started["celery_task_name"]):
                if not rate_limit_claim(limit, at=started["started_at"]):
                    raise _NoSlot(limit)
    return started or None


def _run_state(job_id, attempts: int | None) -> tuple[RunState, float | None]:
    """GONE, or CANCEL_REQUESTED with the seconds since the request by the database's clock (the
    worker's may differ from the web host's that asked)."""
    since = ExpressionWrapper(Now() - F("cancel_requested_at"), output_field=DurationField())
    row = Job.objects.filter(id=job_id).values("status", "attempts", waited=since).first()
    if row is None or row["status"] != RUNNING or row["attempts"] != attempts:
        return RunState.GONE, None
    return RunState.CANCEL_REQUESTED, row["waited"].total_seconds() if row["waited"] is not None else 0.0


def job_heartbeat(
    *, job_id, attempts: int, progress: int | None = None, meta: dict | None = None
) -> tuple[RunState, float | None]:
    """Refresh the heartbeat (and flush throttled progress). Returns the run state and, for a job
    being cancelled, the seconds since the cancel request.

    A job being cancelled keeps its heartbeat while it winds down (or waits out the grace
    period), so the sweeper does not take a live worker for a lost one.
    """
    if _state.heartbeat(job_id, attempts=attempts, progress=progress, meta=meta):
        return RunState.OK, None
    state, waited = _run_state(job_id, attempts)
    if state is RunState.CANCEL_REQUESTED:
        _state.heartbeat_cancelling(job_id, attempts=attempts)
    elif state is RunState.GONE:
        _state.fenced_out(job_id, attempts=attempts, write="heartbeat")
    return state, waited


def job_clean_progress_meta(*, meta: dict | None, message: str | None = None) -> dict:
    """Progress metadata as it will be stored: a JSON object (with ``message`` when given)."""
    meta = dict(meta or {})
    if message is not None:
        meta["message"] = str(message)
    return json_storable(meta, field="progress_meta")


def _check_progress(progress: Any) -> int:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0 <= progress <= 100:
        raise InvalidInput(
            f"progress: must be a number from 0 to 100, got {progress!r}.",
            fields={"progress": ["Must be a number from 0 to 100."]},
        )
    return int(progress)


def job_update_progress(
    *, job_id, progress: int, meta: dict | None = None, message: str | None = None, attempts: int | None = None
) -> RunState:
    """Write progress of a running job. A finished or cancelled job is never changed.

    ``attempts``: the attempt the caller runs (fences off a stale worker); None for any.
    """
    progress = _check_progress(progress)
    meta = job_clean_progress_meta(meta=meta, message=message)
    if _state.progress(job_id, attempts=attempts, progress=progress, meta=meta):
        return RunState.OK
    if attempts is None:
        return _run_state(job_id, Job.objects.filter(id=job_id).values_list("attempts", flat=True).first())[0]
    state = _run_state(job_id, attempts)[0]
    if state is RunState.GONE:
        _state.fenced_out(job_id, attempts=attempts, write="progress")
    return state


def job_succeed(
    *, job_id, attempts: int, result: Any = None, worker: str = "", progress_meta: dict | None = None
) -> None:
    """running -> succeeded with the result; progress becomes 100. ``progress_meta``: the run's last
    progress report, held back by the throttle when it ended (written with the outcome)."""
    result = json_storable(result, field="result", code="result_not_json")
    if not _state.succeed(job_id, attempts=attempts, result=result, worker=worker, progress_meta=progress_meta):
        _state.fenced_out(job_id, attempts=attempts, write="success")
        raise conflict(job_id, "complete")


def job_fail(
    *,
    job_id,
    attempts: int,
    error: str,
    error_type: str = "",
    traceback: str = "",
    auto_retry: bool = True,
    worker: str = "",
) -> bool:
    """running -> pending for an automatic retry (when ``auto_retry`` and retries are left),
    else running -> failed; a job whose cancel was requested ends revoked instead (never retried).
    A retry that would be due after the job's ``expires_at`` is not scheduled: the job ends expired
    at once, with this attempt's error (a deadline bounds every start, the retries' too).
    Returns True when a retry was scheduled. ``error_type``: the exception's class (metrics count
    failures by it).

    The error of every attempt stays in the timeline.

    Every time is the database's clock, which the start compares ``run_at`` with: a retry is due its
    backoff after the database's now (``run_at`` written as ``Now() + delay``), and whether it passes
    the deadline is decided with the database's now: by the job's own read, and again by the requeue
    with its own (a retry found in time by the read and past it by the write ends expired; no
    statement more).
    A worker whose clock is off neither shortens nor lengthens a backoff, nor expires a job early.
    """
    job = (
        Job.objects.filter(id=job_id)
        .only("celery_task_name", "max_retries", "cancel_requested_at", "expires_at")
        .annotate(db_now=Now())
        .first()
    )
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    actor = worker_label(worker)
    data = {"attempt": attempts + 1, "error": error, "traceback": traceback}
    if job.cancel_requested_at and finish_running(
        job_id,
        status=JobStatus.REVOKED,
        fence=Q(attempts=attempts),
        actor_label=actor,
        message=f"Cancelled; it stopped with {error}",
        data=data,
        error=error,
        error_type=error_type,
        traceback=traceback,
    ):
        return False  # a cancelled job ends revoked, whatever it raised on the way out
    if auto_retry and attempts < job.max_retries:
        delay = catalog.get(job.celery_task_name).retry.delay(attempts)
        backoff = timedelta(seconds=delay)
        run_at = job.db_now + backoff  # as the requeue's Now() + backoff writes it, a moment later
        # Deadlines bound every start: a retry due after expires_at would never start. The requeue
        # checks it again with its own now (the read's is a moment older).
        due = Now() + backoff
        in_time = Q(expires_at__isnull=True) | Q(expires_at__gte=due)
        if (job.expires_at is None or run_at <= job.expires_at) and requeue_running(
            job_id,
            attempts=attempts,
            fence=Q(attempts=attempts, cancel_requested_at__isnull=True) & in_time,
            kind=JobEventKind.RETRY_SCHEDULED,
            actor_label=actor,
            run_at=due,
            data={**data, "delay": round(delay, 3)},
            message=f"{attempt_label(attempts).capitalize()} failed: {error}; "
            f"{attempt_label(attempts + 1)} of {job.max_retries + 1} in {delay:.1f}s.",
            error=error,
            error_type=error_type,
            traceback=traceback,
        ):
            return True
        if job.expires_at is not None:
            # Not in time (at the read, or by the requeue's clock): it ends now.
            if finish_running(
                job_id,
                status=JobStatus.EXPIRED,
                fence=Q(attempts=attempts, cancel_requested_at__isnull=True),
                actor_label=actor,
                message=f"expired: not started by {deadline_text(job.expires_at)} "
                f"({attempt_label(attempts)} failed: {error}; {attempt_label(attempts + 1)} "
                f"would have been due at {deadline_text(run_at)})",
                data={**data, "expires_at": job.expires_at.isoformat(), "retry_due": run_at.isoformat()},
                error=error,
                error_type=error_type,
                traceback=traceback,
            ):
                return False
    if not finish_running(
        job_id,
        status=JobStatus.FAILED,
        fence=Q(attempts=attempts),
        actor_label=actor,
        message=error,
        data=data,
        error=error,
        error_type=error_type,
        traceback=traceback,
    ):
        _state.fenced_out(job_id, attempts=attempts, write="failure")
        raise conflict(job_id, "fail")
    return False


def job_revoke(*, job_id, attempts: int, reason: str, worker: str = "") -> None:
    """running -> revoked once a cancelled task has stopped (or is about to be terminated)."""
    if not finish_running(
        job_id,
        status=JobStatus.REVOKED,
        fence=Q(attempts=attempts),
        actor_label=worker_label(worker),
        message=reason,
    ):
        _state.fenced_out(job_id, attempts=attempts, write="revocation")
        raise conflict(job_id, "revoke")


def job_requeue_interrupted(*, job_id, attempts: int, reason: str, worker: str = "") -> bool:
    """running -> pending as the next attempt, sent again after commit: its worker process is about
    to end for another job's sake (a time limit that could not stop that job otherwise), so this one
    runs again elsewhere at once instead of waiting for the sweeper's JOB_STALE_AFTER. Not counted
    against its retries. A job whose cancel was requested is left to the sweeper (it revokes it).
    True when it matched."""
    return requeue_running(
        job_id,
        attempts=attempts,
        fence=Q(attempts=attempts, cancel_requested_at__isnull=True),
        kind=JobEventKind.REQUEUED,
        actor_label=worker_label(worker),
        message=f"{reason}; re-queued as {attempt_label(attempts + 1)}.",
        error=reason,
        error_type="WorkerLost",
    )


def job_fail_unstarted(*, job_id, error: str, error_type: str = "", attempts: int | None = None) -> bool:
    """pending -> failed: the worker could not even start the task (an argument the call cannot
    take, a task name it does not know). Otherwise the job would wait for a start that never comes.
    ``attempts``: the message's attempt, if known (a stale message fails no later attempt)."""
    return transition(
        job_id,
        sources=[PENDING],
        where=None if attempts is None else Q(attempts=attempts),
        changes={"status": JobStatus.FAILED, "error": error, "error_type": error_type, "finished_at": Now()},
        event=event(
            job_id,
            JobEventKind.FAILED,
            from_status=PENDING,
            to_status=JobStatus.FAILED,
            actor_label="worker",
            message=f"Could not start: {error}",
        ),
    )
