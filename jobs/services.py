"""Every write to a job goes through here: the API, the admin, commands and tasks all call these.

Each state change is one conditional UPDATE that names the statuses it may start from; when it
matches no row the change was illegal or lost a race, and the caller gets a Conflict. Changes
made by a running task are also fenced on ``attempts``, so a worker that lost its job (it was
re-queued by the sweeper) can never write over the next attempt.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import math
import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from taskhub.errors import ApplicationError, Conflict, InvalidInput, NotFound

from .catalog import CatalogEntry, catalog
from .models import (
    PRIORITY_QUEUES,
    RETRYABLE_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    JobEventKind,
    JobPriority,
    JobStatus,
)

logger = logging.getLogger(__name__)

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


class RunState(enum.Enum):
    """What a running task learns when it writes progress or a heartbeat."""

    OK = "ok"
    CANCEL_REQUESTED = "cancel_requested"
    GONE = "gone"  # no longer this attempt's to run: finished, revoked, re-queued or deleted


# --- helpers ------------------------------------------------------------------------------------


def _label(user: User | None) -> str:
    return f"user {user.get_username()}" if user else "system"


def _event(
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
    return JobEvent(
        job_id=job_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_label=actor_label or _label(actor),
        message=message,
        data=data or {},
        at=at or timezone.now(),
    )


def _transition(
    job_id,
    *,
    sources: Sequence[str],
    changes: dict[str, Any],
    event: JobEvent | None,
    where: Q | None = None,
    send: bool = False,
) -> bool:
    """One conditional UPDATE plus its timeline line, atomically. True when the row matched.

    ``send``: the job went (back) to pending; publish its message once the transaction commits.
    """
    with transaction.atomic():
        query = Job.objects.filter(id=job_id, status__in=list(sources))
        if where is not None:
            query = query.filter(where)
        matched = query.update(**changes)
        if matched and event is not None:
            event.save()
        if matched and send:
            transaction.on_commit(lambda: job_send(jobs=Job.objects.filter(id=job_id, status=PENDING)))
    return bool(matched)


def _worker_label(worker: str) -> str:
    return f"worker {worker}" if worker else "system"


def _created_event(job: Job, *, how: str = "") -> JobEvent:
    return _event(
        job.id,
        JobEventKind.CREATED,
        to_status=PENDING,
        actor=job.owner,
        at=job.created_at,
        message=f"Created{how} on queue {job.queue} with priority {job.priority}.",
    )


def _conflict(job_id, action: str) -> ApplicationError:
    status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if status is None:
        return NotFound(f"Job {job_id} does not exist.")
    return Conflict(f"Cannot {action} job {job_id}: it is {status}.", code="invalid_state")


MAX_JSON_DEPTH = 100


def _json_problem(value: Any) -> str | None:
    """Why a JSON-like value could not be stored (PostgreSQL's jsonb) or sent, or None.

    jsonb refuses NaN/Infinity, NUL characters and unpaired surrogates, all of which a JSON
    parser lets through, and deep nesting overflows the encoders' recursion; caught here they
    are a 400 naming the field instead of a 500.
    """
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"is nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character (\\u0000)"
            if not item.isascii() and any("\ud800" <= char <= "\udfff" for char in item):
                return "contains an unpaired surrogate"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"contains {item!r}, which JSON cannot represent"
        elif isinstance(item, dict):
            stack.extend((child, depth + 1) for child in (*item.keys(), *item.values()))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return None


def _payload_size(args: Any, kwargs: Any) -> int:
    return len(json.dumps([args, kwargs], cls=DjangoJSONEncoder).encode())


def _fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder).encode()).hexdigest()


# --- create and send ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A validated request for one job, ready to be written."""

    entry: CatalogEntry
    name: str
    task_type: str
    args: list
    kwargs: dict
    priority: str
    max_retries: int
    run_at: datetime | None

    def fingerprint(self) -> str:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "entry"}
        return _fingerprint({"task": self.entry.name, **fields})

    def build(self, *, owner: User, now: datetime) -> Job:
        return Job(
            id=uuid.uuid4(),
            owner=owner,
            name=self.name,
            task_type=self.task_type,
            celery_task_name=self.entry.name,
            args=self.args,
            kwargs=self.kwargs,
            priority=self.priority,
            queue=PRIORITY_QUEUES[self.priority],
            max_retries=self.max_retries,
            run_at=self.run_at,
            created_at=now,
        )


class JobRequest(TypedDict, total=False):
    """What a client may ask of a job (the API's create body, one bulk item, the spec's call)."""

    celery_task_name: Required[str]
    name: str | None
    task_type: str
    args: list | None
    kwargs: dict | None
    priority: str | None
    max_retries: int | None
    run_at: datetime | None


def job_spec_build(*, owner: User, **request: Unpack[JobRequest]) -> JobSpec:
    """Check a job request against the catalog and the limits; raise InvalidInput naming the field."""
    entry = catalog.get(request["celery_task_name"])
    if entry.staff_only and not owner.is_staff:
        raise ApplicationError(f"Task {entry.name} is for staff only.", code="permission_denied", status_code=403)
    args = request.get("args")
    args = [] if args is None else args
    kwargs = request.get("kwargs")
    kwargs = {} if kwargs is None else kwargs
    entry.validate(args, kwargs)
    for field, value in (("args", args), ("kwargs", kwargs)):
        if problem := _json_problem(value):
            message = f"{problem[0].upper()}{problem[1:]}."
            raise InvalidInput(f"{field}: {problem}.", code="invalid_arguments", fields={field: [message]})
    size = _payload_size(args, kwargs)
    if size > settings.JOB_MAX_PAYLOAD_BYTES:
        message = f"args and kwargs take {size} bytes as JSON; the limit is {settings.JOB_MAX_PAYLOAD_BYTES}."
        raise InvalidInput(f"args: {message}", code="payload_too_large", fields={"args": [message]})
    priority = request.get("priority")
    if priority is None:
        priority = entry.priority
    if priority not in JobPriority.values:
        message = f"Unknown priority {priority!r}. Allowed: {', '.join(JobPriority.values)}."
        raise InvalidInput(f"priority: {message}", fields={"priority": [message]})
    max_retries = request.get("max_retries")
    return JobSpec(
        entry=entry,
        name=request.get("name") or entry.name.rsplit(".", 1)[-1],
        task_type=request.get("task_type") or "",
        args=args,
        kwargs=kwargs,
        priority=priority,
        max_retries=entry.retry.max_retries if max_retries is None else max_retries,
        run_at=request.get("run_at"),
    )


def job_create(*, owner: User, idempotency_key: str | None = None, **request: Unpack[JobRequest]) -> Job:
    """Write a pending job and send it to the broker once the transaction commits.

    The job id is also the Celery task id. When the broker is unreachable the job stays
    pending with ``dispatched_at`` empty and the sweeper sends it later. With an
    ``idempotency_key``, the same key and request return the first job; the same key with a
    different request is refused.
    """
    spec = job_spec_build(owner=owner, **request)
    fingerprint = spec.fingerprint() if idempotency_key else ""
    if idempotency_key:
        existing = Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _idempotent_replay(existing, fingerprint)
    job = spec.build(owner=owner, now=timezone.now())
    job.idempotency_key, job.request_fingerprint = idempotency_key, fingerprint
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            _created_event(job).save()
            transaction.on_commit(lambda: job_send(jobs=[job]))
    except IntegrityError:
        existing = Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first() if idempotency_key else None
        if existing is None:
            raise
        return _idempotent_replay(existing, fingerprint)
    return job


def _idempotent_replay(existing: Job, fingerprint: str) -> Job:
    if existing.request_fingerprint != fingerprint:
        raise ApplicationError(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
            status_code=422,
        )
    return existing


def jobs_create_bulk(*, owner: User, items: list[dict[str, Any]]) -> list[Job]:
    """Create many jobs at once: all are checked first, then written in one transaction."""
    if not items:
        raise InvalidInput("jobs: give at least one job.", fields={"jobs": ["Give at least one job."]})
    if len(items) > settings.JOB_BULK_MAX:
        message = f"At most {settings.JOB_BULK_MAX} jobs per request, got {len(items)}."
        raise InvalidInput(f"jobs: {message}", code="too_many", fields={"jobs": [message]})
    specs = []
    for index, item in enumerate(items):
        try:
            specs.append(job_spec_build(owner=owner, **item))
        except ApplicationError as exc:
            # Flat field names (``jobs[1].args``), as every other error: {name: [messages]}.
            where = f"jobs[{index}]"
            fields = {f"{where}.{name}": messages for name, messages in exc.fields.items()} or {where: [exc.message]}
            message = f"{where}.{exc.message}" if exc.fields else f"{where}: {exc.message}"
            raise type(exc)(message, code=exc.code, status_code=exc.status_code, fields=fields) from exc
    now = timezone.now()
    jobs = [spec.build(owner=owner, now=now) for spec in specs]
    with transaction.atomic():
        Job.objects.bulk_create(jobs)
        JobEvent.objects.bulk_create([_created_event(job, how=" (bulk)") for job in jobs])
        transaction.on_commit(lambda: job_send(jobs=jobs))
    return jobs


def job_send(*, jobs: Iterable[Job]) -> list:
    """Publish each job's message; mark the ones the broker took. Never raises for a broker outage."""
    jobs, sent, now = list(jobs), [], timezone.now()  # now: also the dispatch time recorded below
    for job in jobs:
        if job.run_at and job.run_at > now + timedelta(seconds=settings.JOB_SWEEP_INTERVAL):
            continue  # far in the future: the sweeper sends it when it is due
        entry = catalog.get(job.celery_task_name)
        countdown = max(0.0, (job.run_at - now).total_seconds()) if job.run_at else None
        try:
            entry.celery_task.apply_async(
                args=job.args,
                kwargs=job.kwargs,
                task_id=str(job.id),
                queue=job.queue,
                countdown=countdown,
                soft_time_limit=entry.soft_time_limit,
                time_limit=entry.time_limit + 60,
                retry=False,
            )
        except Exception as exc:  # noqa: BLE001 - any publish failure: leave it to the sweeper
            logger.warning("Broker unreachable, job %s stays unsent for the sweeper: %s", job.id, exc)
            break
        sent.append(job.id)
    if sent:
        # No status condition: a fast worker may have started the job already.
        Job.objects.filter(id__in=sent).update(dispatched_at=now)
        sent_ids = set(sent)
        for job in jobs:
            if job.id in sent_ids:
                job.dispatched_at = now
    return sent


# --- running (called by the task base in the worker) -------------------------------------------


def job_start(*, job_id, worker: str) -> Job | None:
    """pending -> running. None when the job is not pending (cancelled, already running, gone)."""
    now = timezone.now()
    started = _transition(
        job_id,
        sources=[PENDING],
        changes={"status": RUNNING, "started_at": now, "heartbeat_at": now, "worker": worker, "finished_at": None},
        event=_event(
            job_id,
            JobEventKind.STARTED,
            from_status=PENDING,
            to_status=RUNNING,
            actor_label=_worker_label(worker),
            at=now,
        ),
    )
    return Job.objects.get(id=job_id) if started else None


def _run_state(job_id, attempt: int) -> tuple[RunState, datetime | None]:
    row = Job.objects.filter(id=job_id).values("status", "attempts", "cancel_requested_at").first()
    if row is None or row["status"] != RUNNING or row["attempts"] != attempt:
        return RunState.GONE, None
    return RunState.CANCEL_REQUESTED, row["cancel_requested_at"]


def job_record_heartbeat(
    *, job_id, attempt: int, progress: int | None = None, meta: dict | None = None
) -> tuple[RunState, datetime | None]:
    """Refresh the heartbeat (and flush throttled progress). Returns the run state.

    A job being cancelled keeps its heartbeat while it winds down (or waits out the grace
    period), so the sweeper does not take a live worker for a lost one.
    """
    changes: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        changes.update(progress=progress, progress_meta=meta or {})
    running = Job.objects.filter(id=job_id, status=RUNNING, attempts=attempt)
    if running.filter(cancel_requested_at__isnull=True).update(**changes):
        return RunState.OK, None
    state, requested_at = _run_state(job_id, attempt)
    if state is RunState.CANCEL_REQUESTED:
        running.update(heartbeat_at=changes["heartbeat_at"])
    return state, requested_at


def _check_progress(progress: Any) -> int:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0 <= progress <= 100:
        raise InvalidInput(
            f"progress: must be a number from 0 to 100, got {progress!r}.",
            fields={"progress": ["Must be a number from 0 to 100."]},
        )
    return int(progress)


def progress_meta_clean(meta: dict | None, message: str | None = None) -> dict:
    """Progress metadata as stored: a JSON object (with ``message`` when given)."""
    meta = dict(meta or {})
    if message is not None:
        meta["message"] = str(message)
    try:
        meta = json.loads(json.dumps(meta, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"progress_meta: not JSON serializable ({exc}).", fields={"progress_meta": [str(exc)]}
        ) from exc
    if problem := _json_problem(meta):
        raise InvalidInput(f"progress_meta: not storable as JSON: it {problem}.", fields={"progress_meta": [problem]})
    return meta


def job_update_progress(
    *, job_id, progress: int, meta: dict | None = None, message: str | None = None, attempt: int | None = None
) -> RunState:
    """Write progress of a running job. A finished or cancelled job is never changed."""
    progress = _check_progress(progress)
    meta = progress_meta_clean(meta, message)
    query = Job.objects.filter(id=job_id, status=RUNNING, cancel_requested_at__isnull=True)
    if attempt is not None:
        query = query.filter(attempts=attempt)
    if query.update(progress=progress, progress_meta=meta, heartbeat_at=timezone.now()):
        return RunState.OK
    if attempt is None:
        attempt = Job.objects.filter(id=job_id).values_list("attempts", flat=True).first()
    return _run_state(job_id, attempt)[0]


def _json_result(result: Any) -> Any:
    try:
        result = json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"result: not JSON serializable ({exc}).", code="result_not_json") from exc
    if problem := _json_problem(result):
        raise InvalidInput(f"result: not storable as JSON: it {problem}.", code="result_not_json")
    return result


def job_succeed(*, job_id, attempt: int, result: Any = None, worker: str = "") -> None:
    """running -> succeeded with the result; progress becomes 100."""
    result = _json_result(result)
    now = timezone.now()
    if not _transition(
        job_id,
        sources=[RUNNING],
        where=Q(attempts=attempt),
        changes={
            "status": JobStatus.SUCCEEDED,
            "progress": 100,
            "result": result,
            "finished_at": now,
            "heartbeat_at": now,
            "error": "",
            "traceback": "",
        },
        event=_event(
            job_id,
            JobEventKind.SUCCEEDED,
            from_status=RUNNING,
            to_status=JobStatus.SUCCEEDED,
            actor_label=_worker_label(worker),
            at=now,
        ),
    ):
        raise _conflict(job_id, "complete")


def retry_delay(*, entry: CatalogEntry, attempt: int) -> float:
    """Exponential backoff ``backoff * 2**attempt`` capped at ``backoff_max``, with equal jitter."""
    delay = min(entry.retry.backoff_max, entry.retry.backoff * (2**attempt))
    return delay / 2 + random.uniform(0, delay / 2) if entry.retry.jitter else delay


def job_fail(
    *, job_id, attempt: int, error: str, traceback: str = "", retryable: bool = True, worker: str = ""
) -> bool:
    """running -> pending for an automatic retry (attempts left), else running -> failed.

    Returns True when a retry was scheduled. The error of every attempt stays in the timeline.
    """
    job = Job.objects.filter(id=job_id).only("celery_task_name", "max_retries").first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    now = timezone.now()
    actor = _worker_label(worker)
    data = {"attempt": attempt, "error": error, "traceback": traceback}
    if retryable and attempt < job.max_retries:
        delay = retry_delay(entry=catalog.get(job.celery_task_name), attempt=attempt)
        run_at = now + timedelta(seconds=delay)
        if _transition(
            job_id,
            sources=[RUNNING],
            where=Q(attempts=attempt, cancel_requested_at__isnull=True),
            send=True,
            changes={
                "status": PENDING,
                "attempts": attempt + 1,
                "error": error,
                "traceback": traceback,
                "run_at": run_at,
                "dispatched_at": None,
                "heartbeat_at": None,
            },
            event=_event(
                job_id,
                JobEventKind.RETRY_SCHEDULED,
                from_status=RUNNING,
                to_status=PENDING,
                actor_label=actor,
                at=now,
                data={**data, "delay": round(delay, 3)},
                message=f"Attempt {attempt + 1} failed: {error}; retry in {delay:.1f}s.",
            ),
        ):
            return True
    if not _transition(
        job_id,
        sources=[RUNNING],
        where=Q(attempts=attempt),
        changes={
            "status": JobStatus.FAILED,
            "error": error,
            "traceback": traceback,
            "finished_at": now,
            "heartbeat_at": now,
        },
        event=_event(
            job_id,
            JobEventKind.FAILED,
            from_status=RUNNING,
            to_status=JobStatus.FAILED,
            actor_label=actor,
            at=now,
            data=data,
            message=error,
        ),
    ):
        raise _conflict(job_id, "fail")
    return False


def job_stop_revoked(*, job_id, attempt: int, reason: str, worker: str = "") -> None:
    """running -> revoked once a cancelled task has stopped (or is about to be terminated)."""
    now = timezone.now()
    if not _transition(
        job_id,
        sources=[RUNNING],
        where=Q(attempts=attempt),
        changes={"status": JobStatus.REVOKED, "finished_at": now, "heartbeat_at": now},
        event=_event(
            job_id,
            JobEventKind.REVOKED,
            from_status=RUNNING,
            to_status=JobStatus.REVOKED,
            actor_label=_worker_label(worker),
            at=now,
            message=reason,
        ),
    ):
        raise _conflict(job_id, "revoke")


# --- operator actions ---------------------------------------------------------------------------


def job_cancel(*, job_id, by: User | None = None) -> Job:
    """Cancel durably: a pending job is revoked at once (it will never start); a running job is
    marked cancel-requested and stops at its next progress call, or is terminated after the
    grace period."""
    now = timezone.now()
    if _transition(
        job_id,
        sources=[PENDING],
        changes={"status": JobStatus.REVOKED, "cancel_requested_at": now, "cancelled_by": by, "finished_at": now},
        event=_event(
            job_id,
            JobEventKind.REVOKED,
            from_status=PENDING,
            to_status=JobStatus.REVOKED,
            actor=by,
            at=now,
            message="Cancelled before it started.",
        ),
    ):
        return Job.objects.get(id=job_id)
    if _transition(
        job_id,
        sources=[RUNNING],
        where=Q(cancel_requested_at__isnull=True),
        changes={"cancel_requested_at": now, "cancelled_by": by},
        event=_event(
            job_id,
            JobEventKind.CANCEL_REQUESTED,
            from_status=RUNNING,
            to_status=RUNNING,
            actor=by,
            at=now,
            message="Cancel requested; the job stops at its next progress report or is "
            f"terminated after {settings.JOB_CANCEL_GRACE_SECONDS:g}s.",
        ),
    ):
        return Job.objects.get(id=job_id)
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    if job.status == RUNNING:
        raise Conflict(
            f"Job {job_id} is already being cancelled (requested at {job.cancel_requested_at:%Y-%m-%d %H:%M:%S}).",
            code="cancel_pending",
        )
    raise Conflict(f"Cannot cancel job {job_id}: it already {job.status}.", code="invalid_state")


def job_retry(*, job_id, by: User | None = None) -> Job:
    """failed/revoked -> pending: the same job id runs again with attempts + 1; history is kept."""
    now = timezone.now()
    job = Job.objects.filter(id=job_id).only("status", "attempts", "error").first()
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    if not _transition(
        job_id,
        sources=list(RETRYABLE_STATUSES),
        where=Q(attempts=job.attempts),
        send=True,
        changes={
            "status": PENDING,
            "attempts": job.attempts + 1,
            "progress": 0,
            "progress_meta": {},
            "result": None,
            "error": "",
            "traceback": "",
            "run_at": None,
            "dispatched_at": None,
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
            "cancel_requested_at": None,
            "cancelled_by": None,
            "worker": "",
        },
        event=_event(
            job_id,
            JobEventKind.RETRIED,
            from_status=job.status,
            to_status=PENDING,
            actor=by,
            at=now,
            data={"previous_error": job.error, "attempt": job.attempts + 1},
            message=f"Retried by {_label(by)} (attempt {job.attempts + 1}).",
        ),
    ):
        raise _conflict(job_id, "retry")
    return Job.objects.get(id=job_id)


def job_delete(*, job_id) -> None:
    """Delete a finished job and its timeline. An active job must be cancelled first (409)."""
    deleted, _ = Job.objects.filter(id=job_id, status__in=list(TERMINAL_STATUSES)).delete()
    if deleted:
        return
    status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if status is None:
        raise NotFound(f"Job {job_id} does not exist.")
    raise Conflict(f"Job {job_id} is {status}: cancel it first, then delete it.", code="job_active")


# --- housekeeping (periodic) --------------------------------------------------------------------


@dataclasses.dataclass
class SweepReport:
    dispatched: int = 0
    requeued: int = 0
    failed: int = 0
    revoked: int = 0


def jobs_sweep(*, batch_size: int = 500) -> SweepReport:
    """Send jobs whose message never reached the broker, and recover jobs whose worker died.

    Runs periodically (celery beat). A running job whose heartbeat is older than
    JOB_STALE_AFTER lost its worker: it is re-queued when retries are left, else it fails with
    "worker lost" (or is revoked, if a cancel was waiting for it).
    """
    report = SweepReport()
    now = timezone.now()
    ready = Q(run_at__isnull=True) | Q(run_at__lte=now + timedelta(seconds=settings.JOB_SWEEP_INTERVAL))
    unsent = Q(dispatched_at__isnull=True) & (
        Q(run_at__isnull=False) | Q(created_at__lte=now - timedelta(seconds=settings.JOB_DISPATCH_AFTER))
    )
    # A message can also vanish after it was sent (a Redis without persistence restarted):
    # a job nobody started long after its message was sent is sent again. A duplicate is
    # harmless, only one delivery can move the row from pending to running.
    lost = Q(dispatched_at__lte=now - timedelta(seconds=settings.JOB_REDISPATCH_AFTER))
    due = list(Job.objects.filter(ready & (unsent | lost), status=PENDING).order_by("created_at")[:batch_size])
    sent = set(job_send(jobs=due))
    JobEvent.objects.bulk_create(
        [
            _event(
                job.id,
                JobEventKind.DISPATCHED_LATE,
                actor_label="sweeper",
                at=now,
                message=f"Sent again: no worker started it since it was sent at {job.dispatched_at:%Y-%m-%d %H:%M:%S}."
                if job.dispatched_at
                else "Sent by the sweeper (the broker was unreachable when it was created).",
            )
            for job in due
            if job.id in sent
        ]
    )
    report.dispatched = len(sent)

    stale = Job.objects.filter(status=RUNNING, heartbeat_at__lt=now - timedelta(seconds=settings.JOB_STALE_AFTER))
    for job in stale.only("id", "attempts", "max_retries", "cancel_requested_at", "heartbeat_at", "worker")[
        :batch_size
    ]:
        since = f"no heartbeat from worker {job.worker or '?'} since {job.heartbeat_at:%Y-%m-%d %H:%M:%S}"
        fence = Q(attempts=job.attempts, heartbeat_at=job.heartbeat_at)
        if job.cancel_requested_at:
            if _transition(
                job.id,
                sources=[RUNNING],
                where=fence,
                changes={"status": JobStatus.REVOKED, "finished_at": now},
                event=_event(
                    job.id,
                    JobEventKind.REVOKED,
                    from_status=RUNNING,
                    to_status=JobStatus.REVOKED,
                    actor_label="sweeper",
                    at=now,
                    message=f"Worker lost ({since}); cancelled.",
                ),
            ):
                report.revoked += 1
        elif job.attempts < job.max_retries:
            if _transition(
                job.id,
                sources=[RUNNING],
                where=fence,
                send=True,
                changes={
                    "status": PENDING,
                    "attempts": job.attempts + 1,
                    "dispatched_at": None,
                    "heartbeat_at": None,
                    "run_at": None,
                    "error": f"Worker lost: {since}.",
                },
                event=_event(
                    job.id,
                    JobEventKind.REQUEUED,
                    from_status=RUNNING,
                    to_status=PENDING,
                    actor_label="sweeper",
                    at=now,
                    message=f"Worker lost ({since}); re-queued as attempt {job.attempts + 1}.",
                ),
            ):
                report.requeued += 1
        elif _transition(
            job.id,
            sources=[RUNNING],
            where=fence,
            changes={"status": JobStatus.FAILED, "finished_at": now, "error": f"Worker lost: {since}."},
            event=_event(
                job.id,
                JobEventKind.FAILED,
                from_status=RUNNING,
                to_status=JobStatus.FAILED,
                actor_label="sweeper",
                at=now,
                message=f"Worker lost: {since}; no retries left.",
                data={"attempt": job.attempts, "error": "worker lost"},
            ),
        ):
            report.failed += 1
    return report


# --- the original specification's service API --------------------------------------------------


class TaskService:
    """The spec's ``task_service``: the same calls, on top of the services above.

    ``db`` is accepted for compatibility and ignored (Django manages connections).
    """

    def create_task(
        self,
        db=None,
        *,
        name: str,
        celery_task_name: str,
        task_type: str = "",
        args: list | None = None,
        kwargs: dict | None = None,
        priority: str = JobPriority.NORMAL,
        user_id: int,
    ) -> tuple[Job, str]:
        owner = User.objects.get(pk=user_id)
        job = job_create(
            owner=owner,
            name=name,
            task_type=task_type,
            celery_task_name=celery_task_name,
            args=args,
            kwargs=kwargs,
            priority=priority,
        )
        return job, str(job.id)

    def get_task(self, db=None, task_id=None) -> Job | None:
        return Job.objects.filter(id=task_id).first()

    def cancel_task(self, db=None, task_id=None) -> bool:
        try:
            job_cancel(job_id=task_id)
        except ApplicationError:
            return False
        return True

    def delete_task(self, db=None, task_id=None) -> bool:
        try:
            job_delete(job_id=task_id)
        except ApplicationError:
            return False
        return True

    def update_task_progress(self, db=None, task_id=None, progress: int = 0, meta: dict | None = None) -> bool:
        return job_update_progress(job_id=task_id, progress=progress, meta=meta) is RunState.OK

    def update_task_status(
        self, db=None, task_id=None, status: str = "", progress: int | None = None, result: Any = None
    ) -> bool:
        """Move a job to ``status`` through the state machine (illegal moves return False)."""
        job = Job.objects.filter(id=task_id).only("status", "attempts").first()
        if job is None:
            return False
        try:
            if status == RUNNING:
                return job_start(job_id=task_id, worker="task_service") is not None
            if status == JobStatus.SUCCEEDED:
                job_succeed(job_id=task_id, attempt=job.attempts, result=result)
            elif status == JobStatus.FAILED:
                job_fail(job_id=task_id, attempt=job.attempts, error=str(result or "failed"), retryable=False)
            elif status == JobStatus.REVOKED:
                job_cancel(job_id=task_id)
            elif status == PENDING and job.status in RETRYABLE_STATUSES:
                job_retry(job_id=task_id)
            else:
                return False
        except ApplicationError:
            return False
        return True


task_service = TaskService()
