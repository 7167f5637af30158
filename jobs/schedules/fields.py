"""A schedule's name as its owner sees it, the name stored for beat, and the limits on both.

django-celery-beat's ``PeriodicTask.name`` is unique across the table, and beat writes its own
entries (``CELERY_BEAT_SCHEDULE``) into that table by name. So a user's schedule is stored as
``user:<owner id>:<name>``: names are unique per owner (another user's names are neither
refused nor revealed), and no user's row can ever carry the name of one of beat's entries.
Clients and the admin see ``<name>``. Names in beat's own namespace (``taskhub-...``,
``celery....``) are refused to users too, so that a name shown never looks like beat's.
"""

from __future__ import annotations

import re

from django.conf import settings
from django_celery_beat.models import PeriodicTask

# PeriodicTask.name holds 200 characters; "user:<id>:" takes the rest.
NAME_MAX_LENGTH = 160
DESCRIPTION_MAX_LENGTH = 1000
RESERVED_PREFIXES = ("taskhub-", "celery.")
_INTERNAL = re.compile(r"user:(?P<owner_id>[0-9]+):(?P<name>.*)", re.DOTALL)


def internal_name(*, owner_id: int, name: str) -> str:
    """The PeriodicTask name of ``owner_id``'s schedule called ``name``."""
    return f"user:{owner_id}:{name}"


def display_name(periodic_task: PeriodicTask) -> str:
    """The name its owner gave the schedule (beat's own entries: their name as stored)."""
    match = _INTERNAL.fullmatch(periodic_task.name)
    schedule = getattr(periodic_task, "job_schedule", None)
    if match and schedule is not None and int(match["owner_id"]) == schedule.owner_id:
        return match["name"]
    return periodic_task.name


def is_reserved_name(name: str) -> bool:
    """A name of beat's own namespace: its CELERY_BEAT_SCHEDULE entries and anything like them."""
    folded = name.strip().casefold()
    beat_names = {entry.casefold() for entry in settings.CELERY_BEAT_SCHEDULE}
    return folded in beat_names or folded.startswith(RESERVED_PREFIXES)
