"""How people read who changed a job and which attempt it was: "user ann", "worker celery@h:12", "attempt 2".

The timeline's ``actor_label`` and messages use them; so does queue control's audit trail.
"""

from __future__ import annotations

# Written once in the timeline, whose derived lines name their actors the same way.
from ..timeline import user_label as user_label
from ..timeline import worker_label as worker_label


def attempt_label(attempts: int) -> str:
    """The attempt a row with this ``attempts`` value runs, counted from 1 (as everywhere people read it)."""
    return f"attempt {attempts + 1}"
