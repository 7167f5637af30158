"""Worker processes seen alive: one row per process that runs jobs, stamped by its watchdog thread.

``worker_beat`` is one UPDATE per ``JOB_HEARTBEAT_INTERVAL`` per process (an INSERT the first
time), by the database's clock, which also judges staleness. A process that stops cleanly removes
its row (``worker_forget``); a killed one's row goes stale and is pruned a day later.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from ..models import WorkerHeartbeat

PRUNE_AFTER = timedelta(days=1)


def worker_beat(*, hostname: str, pid: int, queues: list[str] | None = None) -> None:
    """This process is alive now."""
    if WorkerHeartbeat.objects.filter(hostname=hostname, pid=pid).update(last_seen=Now()):
        return
    try:
        with transaction.atomic():
            WorkerHeartbeat.objects.create(
                hostname=hostname, pid=pid, queues=list(queues or []), started_at=Now(), last_seen=Now()
            )
    except IntegrityError:  # a concurrent first beat of the same process (cannot happen twice)
        WorkerHeartbeat.objects.filter(hostname=hostname, pid=pid).update(last_seen=Now())


def worker_forget(*, hostname: str, pid: int | None) -> None:
    """This process (``pid``), or every process of the worker (None), stops: no longer counted alive."""
    rows = WorkerHeartbeat.objects.filter(hostname=hostname)
    (rows if pid is None else rows.filter(pid=pid)).delete()


def worker_prune() -> int:
    """Forget processes not seen for a day (killed ones never remove their row)."""
    return WorkerHeartbeat.objects.filter(last_seen__lt=Now() - PRUNE_AFTER).delete()[0]
