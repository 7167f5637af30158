"""A job's timeline line (``JobEvent``), built one way: who did what, when, from which status.

The door (``_state``) writes a change's line with the change itself; the stages build the line
here and hand it over. Lines that record no change of the row (a message sent by the sweeper)
are saved by their stage.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.models import User

from ..models import JobEvent


def user_label(user: User | None) -> str:
    return f"user {user.get_username()}" if user else "system"


def worker_label(worker: str) -> str:
    return f"worker {worker}" if worker else "system"


def attempt_label(attempts: int) -> str:
    """The attempt a row with this ``attempts`` value runs, counted from 1 (as everywhere people read it)."""
    return f"attempt {attempts + 1}"


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
    """An unsaved timeline line."""
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
