"""How people read who changed a job and which attempt it was: "user ann", "worker celery@h:12", "attempt 2".

The timeline's ``actor_label`` and messages use them; so does queue control's audit trail.
"""

from __future__ import annotations

from accounts.models import User


def user_label(user: User | None) -> str:
    return f"user {user.get_username()}" if user else "system"


def worker_label(worker: str) -> str:
    return f"worker {worker}" if worker else "system"


def attempt_label(attempts: int) -> str:
    """The attempt a row with this ``attempts`` value runs, counted from 1 (as everywhere people read it)."""
    return f"attempt {attempts + 1}"
