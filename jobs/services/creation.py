"""Creating jobs: a request is checked against the catalog and the limits, then written.

Nothing is written and nothing is sent unless the whole request fits; the message is published
only after the transaction commits, and so is the new job's state for live streams: the door
(``_state.create``) writes the rows and schedules both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from taskhub.errors import ApplicationError, InvalidInput

from ..catalog import CatalogEntry, Concurrency, catalog
from ..models import PRIORITY_QUEUES, Job, JobEvent, JobEventKind, JobPriority, JobStatus
from ..timeline import created_message
from ..unique import UniqueRule, unique_rule
from . import _state
from ._json import json_problem, json_size
from ._quotas import check_quota
from ._state import event
from .uniqueness import write_unique, write_unique_many

# Urgent jobs overtake everyone's: asking for it is a right (jobs.models.Job's permissions).
URGENT_PERMISSION = "jobs.submit_urgent"


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
    expires_at: datetime | None
    expires_in: int | float | None
    # A uniqueness rule (``jobs.unique``): a request's object, or the task's default when absent.
    unique: dict | UniqueRule | None
    concurrency: dict | Concurrency | None  # {"key": ..., "limit": ...}; the task's default when absent


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A checked request for one job, ready to be written."""

    entry: CatalogEntry
    name: str
    task_type: str
    args: list
    kwargs: dict
    priority: str
    max_retries: int
    run_at: datetime | None
    expires_at: datetime | None = None
    expires_in: int | float | None = None  # as asked (the fingerprint's)
    unique: UniqueRule | None = None
    unique_key: str | None = None
    concurrency: Concurrency | None = None

    def fingerprint(self) -> str:
        skipped = ("entry", "concurrency", "expires_at", "expires_in")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skipped}
        # A deadline as asked (a replay with expires_in is the same request a moment later), and absent
        # without one: fingerprints stored before deadlines existed still match.
        if self.expires_in is not None:
            fields["expires_in"] = self.expires_in
        elif self.expires_at is not None:
            fields["expires_at"] = self.expires_at
        if self.unique is not None:  # absent otherwise, as the deadline and the concurrency rule
            fields["unique"] = self.unique.as_dict()
        if self.concurrency is not None:  # absent otherwise: fingerprints stored before keys existed still match
            fields["concurrency"] = dataclasses.asdict(self.concurrency)
        data = {"task": self.entry.name, **fields}
        return hashlib.sha256(json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder).encode()).hexdigest()

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
            expires_at=self.expires_at,
            created_at=now,
            unique_key=self.unique_key,
            concurrency_key=self.concurrency and self.concurrency.key,
            concurrency_limit=self.concurrency and self.concurrency.limit,
        )


def job_build_spec(
    *, owner: User, by_application: bool = False, acting: User | None = None, **request: Unpack[JobRequest]
) -> JobSpec:
    """Check a job request against the catalog and the limits; raise InvalidInput naming the field.

    ``by_application``: the application's own code asks (the django.tasks backend), not a user:
    the priority is its to choose (urgent needs no permission). ``acting``: who asks for the
    priority when it is not the owner (an operator's edit and retry)."""
    entry = catalog.get(request["celery_task_name"])
    entry.check_owner(owner)
    args = request.get("args")
    args = [] if args is None else args
    kwargs = request.get("kwargs")
    kwargs = {} if kwargs is None else kwargs
    entry.validate(args, kwargs)
    entry.check_arguments(owner, args, kwargs)
    entry.check_budget(owner, [(args, kwargs)])
    for field, value in (("args", args), ("kwargs", kwargs)):
        if problem := json_problem(value):
            message = f"{problem[0].upper()}{problem[1:]}."
            raise InvalidInput(f"{field}: {problem}.", code="invalid_arguments", fields={field: [message]})
    size = json_size([args, kwargs])
    if size > settings.JOB_MAX_PAYLOAD_BYTES:
        message = f"args and kwargs take {size} bytes as JSON; the limit is {settings.JOB_MAX_PAYLOAD_BYTES}."
        raise InvalidInput(f"args: {message}", code="payload_too_large", fields={"args": [message]})
    priority = request.get("priority")
    if priority is None:
        priority = entry.priority
    if priority not in JobPriority.values:
        message = f"Unknown priority {priority!r}. Allowed: {', '.join(JobPriority.values)}."
        raise InvalidInput(f"priority: {message}", fields={"priority": [message]})
    asked_urgent = priority == JobPriority.URGENT and entry.priority != JobPriority.URGENT
    if asked_urgent and not by_application and not (acting or owner).has_perm(URGENT_PERMISSION):
        message = f"Priority urgent needs the {URGENT_PERMISSION} permission (operators have it); use high."
        raise ApplicationError(
            f"priority: {message}", code="permission_denied", status_code=403, fields={"priority": [message]}
        )
    max_retries = request.get("max_retries")
    expires_at = job_deadline(
        expires_at=request.get("expires_at"), expires_in=request.get("expires_in"), run_at=request.get("run_at")
    )
    rule = unique_rule(request["unique"]) if request.get("unique") is not None else entry.unique
    concurrency = Concurrency.parse(request.get("concurrency"))
    if concurrency is None and entry.concurrency is not None:
        concurrency = entry.concurrency.render({**kwargs, **entry.parameters.bind(args, kwargs)})
    return JobSpec(
        entry=entry,
        name=request.get("name") or entry.name.rsplit(".", 1)[-1],
        task_type=request.get("task_type") or "",
        args=args,
        kwargs=kwargs,
        priority=priority,
        max_retries=entry.retry.max_retries if max_retries is None else max_retries,
        run_at=request.get("run_at"),
        expires_at=expires_at,
        expires_in=request.get("expires_in"),
        unique=rule,
        unique_key=rule.key_for(entry.name, args, kwargs) if rule else None,
        concurrency=concurrency,
    )


# The longest expires_in: ten years (a deadline further away is none).
MAX_EXPIRES_IN = 10 * 365 * 86400


def job_deadline(
    *,
    expires_at: datetime | None = None,
    expires_in: int | float | None = None,
    run_at: datetime | None = None,
    now: datetime | None = None,
) -> datetime | None:
    """A job's deadline (``expires_at``) from an ISO time or seconds from ``now`` (Celery's
    ``expires``): at most one of the two, in the future and after ``run_at``. InvalidInput naming
    the field otherwise. None: no deadline."""
    now = now or timezone.now()
    if expires_at is not None and expires_in is not None:
        message = "Give expires_at or expires_in, not both."
        raise InvalidInput(
            f"expires_in: {message}", code="invalid_deadline", fields={"expires_in": [message], "expires_at": [message]}
        )
    field = "expires_at"
    if expires_in is not None:
        field = "expires_in"
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or not 0 < expires_in:
            message = f"Must be a positive number of seconds, got {expires_in!r}."
            raise InvalidInput(f"expires_in: {message}", code="invalid_deadline", fields={field: [message]})
        if expires_in > MAX_EXPIRES_IN:
            message = f"At most {MAX_EXPIRES_IN} seconds (ten years), got {expires_in!r}."
            raise InvalidInput(f"expires_in: {message}", code="invalid_deadline", fields={field: [message]})
        expires_at = now + timedelta(seconds=expires_in)
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
        message = "Must be a date and time with its time zone (ISO 8601)."
        raise InvalidInput(f"expires_at: {message}", code="invalid_deadline", fields={field: [message]})
    if expires_at <= now:
        message = f"{expires_at.isoformat()} is in the past: a job must be able to start before its deadline."
        raise InvalidInput(f"{field}: {message}", code="invalid_deadline", fields={field: [message]})
    if run_at is not None and expires_at <= run_at:
        message = (
            f"The deadline {expires_at.isoformat()} is not after run_at {run_at.isoformat()}: it could never start."
        )
        raise InvalidInput(f"{field}: {message}", code="invalid_deadline", fields={field: [message]})
    return expires_at


def created_event(job: Job, *, via: str = "", how: str | None = None) -> JobEvent:
    """A new job's created line. ``via`` ("bulk", "schedule") is kept on the row (``created_via``),
    which the line derives from (``jobs.timeline``: then it is not written); ``how``: a message the
    row cannot say (a workflow's step), a line written."""
    job.created_via = via
    return event(
        job.id,
        JobEventKind.CREATED,
        to_status=JobStatus.PENDING,
        actor=job.owner,
        at=job.created_at,
        message=created_message(job, how),
    )


def job_create(
    *,
    owner: User,
    idempotency_key: str | None = None,
    schedule_id: int | None = None,
    scheduled_for: datetime | None = None,
    by_application: bool = False,
    **request: Unpack[JobRequest],
) -> Job:
    """Write a pending job and send it to the broker once the transaction commits.

    The job id is also the Celery task id. When the broker is unreachable the job stays
    pending with ``dispatched_at`` empty and the sweeper sends it later. The owner's quotas
    (``_quotas``) are checked in the same transaction (429 over a limit). With an
    ``idempotency_key``, the same key and request return the first job; the same key with a
    different request is refused. ``schedule_id`` and ``scheduled_for`` link a schedule's job
    to its periodic task and slot (one job per slot: a second one raises IntegrityError).

    With a uniqueness rule (``unique``, or the task's default) the answer may be the job that holds
    the key instead (``uniqueness.write_unique``); ``dedupe_outcome`` says what the request did to
    it (None: a new job).
    """
    spec = job_build_spec(owner=owner, by_application=by_application, **request)
    fingerprint = spec.fingerprint() if idempotency_key else ""
    if idempotency_key:
        existing = Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _idempotent_replay(existing, fingerprint)
    job = spec.build(owner=owner, now=timezone.now())
    job.idempotency_key, job.request_fingerprint = idempotency_key, fingerprint
    job.schedule_id, job.scheduled_for = schedule_id, scheduled_for
    job.dedupe_outcome = None
    line = created_event(job, via="schedule" if schedule_id else "")
    try:
        with transaction.atomic():
            if spec.unique is None:
                check_quota(owner, count=1, now=job.created_at)
                _state.create([job], [line])
            else:
                # The quota once the job is known to be new: a duplicate creates nothing (never a 429).
                job = write_unique(job, line, spec.unique, by=owner, admit=_admit(owner, now=job.created_at))
    except IntegrityError:
        existing = Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first() if idempotency_key else None
        if existing is None:
            raise
        return _idempotent_replay(existing, fingerprint)
    return job


def _key_reused() -> ApplicationError:
    return ApplicationError(
        "This Idempotency-Key was already used with a different request body.",
        code="idempotency_key_reused",
        status_code=422,
    )


def _idempotent_replay(existing: Job, fingerprint: str) -> Job:
    if existing.request_fingerprint != fingerprint:
        raise _key_reused()
    return existing


def job_create_bulk(*, owner: User, items: list[dict[str, Any]], idempotency_key: str | None = None) -> list[Job]:
    """Create many jobs at once: all are checked first, then written in one transaction.

    With an ``idempotency_key``, the same key and list return the first request's jobs; the same
    key with another list is refused. Each job keeps ``bulk:<hash of the key>:<index>`` as its
    key, so the (owner, key) unique constraint makes a concurrent repeat write nothing.
    """
    if not items:
        raise InvalidInput("jobs: give at least one job.", fields={"jobs": ["Give at least one job."]})
    if len(items) > settings.JOB_BULK_MAX:
        message = f"At most {settings.JOB_BULK_MAX} jobs per request, got {len(items)}."
        raise InvalidInput(f"jobs: {message}", code="too_many", fields={"jobs": [message]})
    specs = []
    for index, item in enumerate(items):
        try:
            specs.append(job_build_spec(owner=owner, **item))
        except ApplicationError as exc:
            # Flat field names (``jobs[1].args``), as every other error: {name: [messages]}.
            where = f"jobs[{index}]"
            fields = {f"{where}.{name}": messages for name, messages in exc.fields.items()} or {where: [exc.message]}
            message = f"{where}.{exc.message}" if exc.fields else f"{where}: {exc.message}"
            raise type(exc)(message, code=exc.code, status_code=exc.status_code, fields=fields) from exc
    for entry in {spec.entry.name: spec.entry for spec in specs}.values():  # the request's jobs together
        entry.check_budget(owner, [(spec.args, spec.kwargs) for spec in specs if spec.entry is entry])
    keys, fingerprint = _bulk_keys(idempotency_key, specs)
    replayed = _bulk_replay(owner, keys, fingerprint, specs) if keys else {}
    if replayed and len(replayed) == len(specs):
        return [replayed[index] for index in range(len(specs))]
    now = timezone.now()
    # One microsecond apart in request order: the list's (-created_at, -id) order then shows a bulk's
    # jobs last item first, every time, instead of by their random uuid4 ids.
    jobs = [spec.build(owner=owner, now=now + timedelta(microseconds=index)) for index, spec in enumerate(specs)]
    for job, key in zip(jobs, keys, strict=False):
        job.idempotency_key, job.request_fingerprint = key, fingerprint
    # A replay writes only the items its first request did not create a job for (its duplicates).
    todo = [
        (index, job, spec) for index, (job, spec) in enumerate(zip(jobs, specs, strict=True)) if index not in replayed
    ]
    plain = [job for _, job, spec in todo if spec.unique is None]
    # Keyed jobs one statement each, in key order: overlapping bulk requests lock keys in one order.
    keyed = sorted(
        ((index, job, spec.unique) for index, job, spec in todo if spec.unique),
        key=lambda item: (item[1].unique_key, item[0]),
    )
    for job in jobs:
        job.dedupe_outcome = None
    try:
        with transaction.atomic():
            if plain:
                check_quota(owner, count=len(plain), now=now)
                _state.create(plain, [created_event(job, via="bulk") for job in plain])
            # The keyed items count once written: duplicates create nothing (never a 429). The first
            # item of each key in one statement; a later item of a key is a duplicate of the first;
            # the duplicates in one more (``write_unique_many``).
            answers = write_unique_many(
                [(job, created_event(job, via="bulk"), rule) for _, job, rule in keyed],
                by=owner,
                admit=_admit(owner, now=now),
            )
            for (index, _, _), answer in zip(keyed, answers, strict=True):
                jobs[index] = answer
    except IntegrityError:
        # A concurrent request under the same key wrote first: answer as its replay.
        if not keys or replayed or not (replayed := _bulk_replay(owner, keys, fingerprint, specs)):
            raise
        return job_create_bulk(owner=owner, items=items, idempotency_key=idempotency_key)
    for index, job in replayed.items():
        jobs[index] = job
    return jobs


def _admit(owner: User, *, now: datetime):
    """The quota of keyed creates: checked for the jobs a keyed write made, once they are written."""
    return lambda written: check_quota(owner, count=written, now=now, written=written)


def _bulk_keys(idempotency_key: str | None, specs: list[JobSpec]) -> tuple[list[str], str]:
    """Each job's key of a keyed bulk request, and the fingerprint of the whole list."""
    if not idempotency_key:
        return [], ""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    fingerprint = hashlib.sha256("".join(spec.fingerprint() for spec in specs).encode()).hexdigest()
    return [f"bulk:{digest}:{index}" for index in range(len(specs))], fingerprint


def _bulk_replay(owner: User, keys: list[str], fingerprint: str, specs: list[JobSpec]) -> dict[int, Job]:
    """The jobs a keyed bulk request created before, by item index ({} if it is new). An item with a
    uniqueness rule that was a duplicate created no job, so none carries its key: the replay writes it
    again (deduplicated again, as a single create's retry is). Another list under the key is refused."""
    existing = {job.idempotency_key: job for job in Job.objects.filter(owner=owner, idempotency_key__in=keys)}
    if not existing:
        return {}
    found = {index: existing[key] for index, key in enumerate(keys) if key in existing}
    missing_plain = any(spec.unique is None for index, spec in enumerate(specs) if index not in found)
    if missing_plain or any(job.request_fingerprint != fingerprint for job in existing.values()):
        raise _key_reused()
    return found
