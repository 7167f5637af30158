"""A job's timeline, the one place it is read (issue 20): its real lines (``JobEvent`` rows) and the
ordinary lines of its current run, derived from the job's own columns instead of inserted.

Derived, when no real line says it already:

* ``created`` at ``created_at``, by the owner: "Created on queue Q with priority P.", or "Created
  (bulk) …" / "Created by a schedule …" (``created_via``); a create whose line says anything else
  (a workflow's step, keep_latest's follow-up), or whose actor is not the owner, writes it
  (``reproduces``);
* ``started`` at ``started_at``, by ``worker`` (pending -> running), unless a stored ``started``
  line has that very time (written before the job went round again) or belongs to the current run
  (after its last line of ``RETRY_EVENT_KINDS``: stored by a start before issue 20);
* ``succeeded`` at ``finished_at``, by ``worker`` (running -> succeeded) of a succeeded job.

A change that would make a derived line untrue (the job back to pending, whose next start
overwrites ``started_at``; a new priority or queue) first writes the lines derived so far as real
rows, in its own transaction (``jobs.services._state_effects.materialize``). Derived lines carry
fixed negative ids, ``DERIVED_IDS`` (-1 created, -2 started, -3 succeeded): stable while they are
derived, never a real row's; a line written later as a real row gets the database's id.
"""

from __future__ import annotations

from collections.abc import Iterable

from accounts.models import User

from .models import RETRY_EVENT_KINDS, Job, JobEvent, JobEventKind, JobStatus

CREATED, STARTED, SUCCEEDED = JobEventKind.CREATED, JobEventKind.STARTED, JobEventKind.SUCCEEDED
DERIVED_IDS = {CREATED: -1, STARTED: -2, SUCCEEDED: -3}


def user_label(user: User | None) -> str:
    return f"user {user.get_username()}" if user else "system"


def worker_label(worker: str) -> str:
    return f"worker {worker}" if worker else "system"


# How each ``Job.created_via`` reads in its created line.
CREATED_HOW = {"": "", "bulk": " (bulk)", "schedule": " by a schedule"}


def created_message(job: Job, how: str | None = None) -> str:
    """The created line's message: ``how`` (a workflow's step), or what ``job.created_via`` says."""
    how = CREATED_HOW.get(job.created_via, "") if how is None else how
    return f"Created{how} on queue {job.queue} with priority {job.priority}."


def _line(job: Job, kind: str, at, *, from_status: str = "", to_status: str, actor=None, label: str) -> JobEvent:
    line = JobEvent(
        id=DERIVED_IDS[kind],
        job_id=job.id,
        at=at,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor_label=label,
        message=created_message(job) if kind == CREATED else "",
        data={},
    )
    line.actor = actor
    return line


def derived_lines(job: Job, real: Iterable[JobEvent]) -> list[JobEvent]:
    """The ordinary lines of ``job`` that its real lines (``real``, in order) do not hold, in order."""
    real = list(real)
    rounds = [index for index, line in enumerate(real) if line.kind in RETRY_EVENT_KINDS]
    current = real[rounds[-1] + 1 :] if rounds else real
    lines = []
    if not any(line.kind == CREATED for line in real):
        owner = job.owner
        lines.append(
            _line(job, CREATED, job.created_at, to_status=JobStatus.PENDING, actor=owner, label=user_label(owner))
        )
    # Written already: by ``materialize`` (its copy has the row's started_at, to the microsecond), or
    # by the start itself (a line stored before issue 20: the current run's, after its last retry line).
    stored = any(line.kind == STARTED and (line.at == job.started_at or line in current) for line in real)
    if job.started_at is not None and not stored:
        label = worker_label(job.worker)
        lines.append(
            _line(job, STARTED, job.started_at, from_status=JobStatus.PENDING, to_status=JobStatus.RUNNING, label=label)
        )
    succeeded = job.status == JobStatus.SUCCEEDED and job.finished_at is not None
    if succeeded and not any(line.kind == SUCCEEDED for line in real):
        label = worker_label(job.worker)
        lines.append(
            _line(
                job,
                SUCCEEDED,
                job.finished_at,
                from_status=JobStatus.RUNNING,
                to_status=JobStatus.SUCCEEDED,
                label=label,
            )
        )
    return lines


def merged(real: Iterable[JobEvent], derived: Iterable[JobEvent]) -> list[JobEvent]:
    """Real and derived lines in one order: by time; at the same time a derived line first (it is
    the row's own, written before anything else of that moment), real lines by id."""
    return sorted([*real, *derived], key=lambda line: (line.at, line.id >= 0, abs(line.id)))


def job_lines(*, job: Job, kinds: Iterable[str] | None = None) -> list[JobEvent]:
    """``job``'s timeline in order, real and derived lines (their actors read), or its lines of ``kinds``."""
    real = list(JobEvent.objects.filter(job_id=job.id).select_related("actor").order_by("at", "id"))
    lines = merged(real, derived_lines(job, real))
    if kinds is not None:
        kinds = set(kinds)
        lines = [line for line in lines if line.kind in kinds]
    return lines


def reproduces(job: Job, line: JobEvent) -> bool:
    """Whether the ``created`` line of a new ``job`` is the one its row derives: then it is not written."""
    if line.kind != CREATED or line.actor_id != job.owner_id or line.at != job.created_at:
        return False
    derived = derived_lines(job, [])[0]
    fields = ("from_status", "to_status", "actor_label", "message", "data")
    return all(getattr(line, name) == getattr(derived, name) for name in fields)
