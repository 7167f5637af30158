"""What every change of the door (``_state``) shares: its timeline line (``event``, the one builder
of a line; ``deadline_text``, a deadline as lines write it) and what follows it once it matched
(``after_change``: the live publish and, for jobs back in pending, their messages, after commit).
Door-internal: the door and its parts (``_state_create``, ``_state_running``) import it; stage
modules reach these through ``_state``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User

from ..live import job_changed, jobs_changed
from ..models import Job, JobEvent, JobStatus
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
