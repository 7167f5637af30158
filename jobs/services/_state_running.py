"""The door's part for a running attempt's own writes that change no status (no timeline line):
its progress and heartbeat (``progress``, ``heartbeat``, ``heartbeat_cancelling``), the start's
``started_at`` once its concurrency key was claimed (``stamp_started``), and the warning for a
write fenced off by ``attempts`` (``fenced_out``). Re-exported by ``_state``, the one door stage
modules call (they never import this module).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db.models.functions import Now

from ..models import Job, JobStatus
from . import _sql
from ._state_effects import after_change

RUNNING = JobStatus.RUNNING

# The door's logger, as before this module was split from it (log filters and the many-hosts bed read it).
logger = logging.getLogger("jobs.services._state")


def stamp_started(job_id) -> datetime | None:
    """Inside the start's transaction, once its concurrency key was claimed: ``started_at`` becomes
    the claim's moment (the database's clock). The start's UPDATE came before the claim, and a job of
    the key that finished in between would otherwise seem to overlap it."""
    if _sql.available():
        return _sql.stamp_started(job_id)
    query = Job.objects.filter(id=job_id)
    query.update(started_at=Now())
    return query.values_list("started_at", flat=True).first()


def progress(job_id, *, attempts: int | None, progress: int, meta: dict) -> bool:
    """Progress of the running, not cancelled job (of ``attempts``; any when None); stamps the
    heartbeat. A finished or cancelled job is never changed. Whether it matched."""
    if attempts is not None and _sql.available():
        written = _sql.progress(job_id, attempts=attempts, progress=progress, meta=meta)
    else:
        query = Job.objects.filter(id=job_id, status=RUNNING, cancel_requested_at__isnull=True)
        if attempts is not None:
            query = query.filter(attempts=attempts)
        written = bool(query.update(progress=progress, progress_meta=meta, heartbeat_at=Now()))
    after_change([job_id], written, send=False)
    return written


def heartbeat(job_id, *, attempts: int, progress: int | None = None, meta: dict | None = None) -> bool:
    """Stamp the running, not cancelled attempt's heartbeat (the database's clock), with the
    throttled progress when given (published then: a heartbeat alone shows nothing new)."""
    changes: dict[str, Any] = {"heartbeat_at": Now()}
    if progress is not None:
        changes.update(progress=progress, progress_meta=meta or {})
    running = Job.objects.filter(id=job_id, status=RUNNING, attempts=attempts, cancel_requested_at__isnull=True)
    written = bool(running.update(**changes))
    after_change([job_id], written and progress is not None, send=False)
    return written


def heartbeat_cancelling(job_id, *, attempts: int) -> None:
    """A job being cancelled keeps its heartbeat while it winds down (or waits out the grace
    period), so the sweeper does not take a live worker for a lost one."""
    Job.objects.filter(id=job_id, status=RUNNING, attempts=attempts).update(heartbeat_at=Now())


def fenced_out(job_id, *, attempts: int, write: str) -> None:
    """Log a worker's write fenced off by ``attempts``: it changed 0 rows because the job is no longer
    that attempt's (re-queued by the sweeper, finished, cancelled, deleted) — typically a worker that
    was cut off or paused and writes late. One WARNING per refused write, naming the job and the
    attempt; the many-hosts bed counts them (docs/RELIABILITY.md)."""
    logger.warning(
        "Job %s: fenced write refused: the %s of attempt %d changed 0 rows (the job is no longer this run's).",
        job_id,
        write,
        attempts + 1,
    )
