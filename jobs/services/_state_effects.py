"""What every change of the door (``_state``) shares: its timeline line (``event``, the one builder
of a line; ``deadline_text``, a deadline as lines write it) and what follows it once it matched
(``after_change``: the live publish and, for jobs back in pending, their messages, after commit).
Door-internal: the door and its parts (``_state_create``, ``_state_running``) import it; stage
modules reach these through ``_state``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from accounts.models import User

from ..live import job_changed, jobs_changed
from ..models import Job, JobEvent, JobStatus
from ..timeline import derived_lines
from .dispatch import job_dispatch
from .labels import user_label

PENDING = JobStatus.PENDING


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
    a line that records no change, such as a message the sweeper sent, is saved by its stage).

    ``at``: only a time the line must share with its row (a created line's ``created_at``); else
    the database's clock writes it (``JobEvent.at``'s default, returned by the INSERT), never this
    process's, which on a host whose clock is off would set it out of order with the row's times."""
    line = JobEvent(
        job_id=job_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_label=actor_label or user_label(actor),
        message=message,
        data=data or {},
    )
    if at is not None:
        line.at = at
    return line


def deadline_text(expires_at: datetime) -> str:
    """A deadline as timeline lines write it: ISO 8601 in UTC, to the second."""
    return expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def after_change(job_ids, matched, send: bool) -> None:
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


# What a change may overwrite of the columns a job's derived lines are read from (jobs.timeline):
# back in pending (an operator's retry clears started_at and worker, the next start overwrites them)
# or with a new priority or queue (what its created line says). A start's own started_at is its line's.
_OVERWRITING = ("priority", "queue")


def materializes(changes: dict) -> bool:
    """Whether a change (``changes`` of the job's columns) must first write its derived lines."""
    return changes.get("status") == PENDING or any(name in changes for name in _OVERWRITING)


def materialize(query) -> int:
    """The lines the jobs of ``query`` derive from their rows (``jobs.timeline``) written as real
    rows, their rows locked first (in the order of their ids, as every change of many jobs locks
    them), inside the caller's transaction: the change that follows overwrites what they were read
    from. How many lines were written."""
    jobs = list(query.select_for_update(of=("self",), no_key=True).select_related("owner").order_by("id"))
    if not jobs:
        return 0
    real: dict = {job.id: [] for job in jobs}
    for line in JobEvent.objects.filter(job_id__in=list(real)).order_by("at", "id"):
        real[line.job_id].append(line)
    lines = [line for job in jobs for line in derived_lines(job, real[job.id])]
    for line in lines:
        line.id = None
    JobEvent.objects.bulk_create(lines)
    return len(lines)
