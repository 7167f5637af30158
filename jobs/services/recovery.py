"""The periodic sweep (celery beat): nothing is lost and nothing stays running forever.

It sends pending jobs whose message never reached the broker (or vanished from it), ends pending
jobs past their deadline that no message will come for (``job_expire_due``), recovers running
jobs whose worker died: their heartbeat went stale, and writes the keep_latest follow-up of a
finished job still holding its request (``job_follow_up_lost``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from ..catalog import catalog
from ..models import TERMINAL_STATUSES, Job, JobEvent, JobEventKind, JobStatus
from ._state import event, expire, finish_running, follow_up, requeue_running, transition
from .concurrency import job_release_waiting
from .dispatch import broker_queue_sizes, job_dispatch
from .gates import paused_queues
from .labels import attempt_label

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING
SWEEPER = "sweeper"
# The exception class metrics give a job whose worker died (no exception was raised anywhere).
WORKER_LOST = "WorkerLost"
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SweepReport:
    dispatched: int = 0
    requeued: int = 0
    failed: int = 0
    revoked: int = 0
    expired: int = 0
    followed_up: int = 0


def job_sweep(*, batch_size: int = 500) -> SweepReport:
    """One sweep: expire what is past its deadline, send what is due and unsent, then recover jobs
    whose worker died and write lost keep_latest follow-ups.

    Beat runs the three as separate maintenance tasks; this runs them all, for a caller that
    wants one report (tests, a shell)."""
    expired = job_expire_due(batch_size=batch_size)
    report = SweepReport(dispatched=job_dispatch_due(batch_size=batch_size), expired=expired)
    for outcome in job_recover_stale(batch_size=batch_size):
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def job_dispatch_due(*, batch_size: int = 500, queues: Iterable[str] | None = None, resumed: bool = False) -> int:
    """Send pending jobs that are due and were never sent, or whose message was lost. Returns how many.

    A message is lost when Redis restarted without persistence (or a queue was purged): the job
    was sent, has been due for JOB_LOST_AFTER, nobody started it, and its queue is empty. A job
    waiting in a backlog (its queue holds messages) is left alone, however long it waits.
    A duplicate is harmless: only one delivery can move the row from pending to running.

    Paused queues are left alone: their jobs are held, not lost. ``queues``: only these.
    ``resumed``: they were just resumed; their unsent jobs go at once, however recent.

    Jobs waiting for their concurrency key are sent only when the key has room
    (``concurrency.job_release_waiting``, for every key on a full sweep: the safety net of the
    release that follows each keyed job's end).
    """
    now = timezone.now()
    paused = paused_queues(queues)
    ready = Q(run_at__isnull=True) | Q(run_at__lte=now + timedelta(seconds=settings.JOB_SWEEP_INTERVAL))
    unsent = Q(dispatched_at__isnull=True) & (
        Q(run_at__isnull=False) | Q(created_at__lte=now - timedelta(seconds=settings.JOB_DISPATCH_AFTER))
    )
    if resumed:
        unsent = Q(dispatched_at__isnull=True)
        job_expire_due(batch_size=batch_size, queues=queues)  # held past their deadline: they end now
    unsent &= Q(concurrency_waiting_since__isnull=True)
    # A workflow step waiting for its parents is not due: their success sends it.
    pending = (
        Job.objects.filter(status=PENDING, parents_remaining=0).exclude(queue__in=paused).exclude(expires_at__lte=now)
    )
    if queues is not None:
        pending = pending.filter(queue__in=list(queues))
    due = list(pending.filter(ready & unsent).order_by("created_at")[:batch_size])
    due += _lost(pending, now, batch_size - len(due)) if len(due) < batch_size and not resumed else []
    unrunnable = [job for job in due if job.celery_task_name not in catalog]
    for job in unrunnable:
        _fail_unregistered(job)
    sent = set(job_dispatch(jobs=[job for job in due if job.celery_task_name in catalog]))
    JobEvent.objects.bulk_create(
        [
            event(job.id, JobEventKind.DISPATCHED_LATE, actor_label=SWEEPER, at=now, message=_sent_why(job, resumed))
            for job in due
            if job.id in sent
        ]
    )
    released = job_release_waiting(batch_size=batch_size) if queues is None else 0
    return len(sent) + released


def job_expire_due(*, batch_size: int = 500, queues: Iterable[str] | None = None) -> int:
    """End pending jobs past their ``expires_at``: nobody will start them, or no message will come
    (held by a paused queue, deferred by a rate limit or a fair share, a retry's backoff, a lost
    message), so they end ``expired`` by the sweep, not only when a message finds them. Returns how
    many. ``queues``: only these (a resumed queue's). A cheap scan: the partial index
    ``job_pending_expires`` holds only pending jobs with a deadline."""
    due = (
        Job.objects.filter(status=PENDING, expires_at__isnull=False, expires_at__lte=Now())
        .order_by("expires_at")
        .values_list("id", "expires_at")
    )
    if queues is not None:
        due = due.filter(queue__in=list(queues))
    expired = 0
    for job_id, expires_at in due[:batch_size]:
        expired += expire(job_id, expires_at=expires_at, actor_label=SWEEPER)
    return expired


def _sent_why(job: Job, resumed: bool) -> str:
    if resumed:
        return f"Sent: queue {job.queue} was resumed."
    if job.dispatched_at:
        return (
            f"Sent again: its message was lost (sent at {job.dispatched_at:%Y-%m-%d %H:%M:%S}, "
            f"never started, and queue {job.queue} is empty)."
        )
    if job.run_at:
        return f"Sent by the sweeper: due at {job.run_at:%Y-%m-%d %H:%M:%S}."
    return "Sent by the sweeper (the broker was unreachable when it was created, or its queue was paused)."


def _fail_unregistered(job: Job) -> None:
    """pending -> failed: its task left the catalog (a deploy removed or renamed it); it can never run."""
    error = f"Task {job.celery_task_name} is not registered (any more): the job cannot run."
    transition(
        job.id,
        sources=[PENDING],
        changes={
            "status": JobStatus.FAILED,
            "error": error,
            "error_type": "NotRegistered",
            "finished_at": Now(),
        },
        event=event(
            job.id,
            JobEventKind.FAILED,
            from_status=PENDING,
            to_status=JobStatus.FAILED,
            actor_label=SWEEPER,
            message=error,
        ),
    )


def _lost(pending, now, limit: int) -> list[Job]:
    """Sent jobs due for JOB_LOST_AFTER that nobody started, on queues that hold no message (and
    are not paused: ``pending`` leaves those out)."""
    since = now - timedelta(seconds=settings.JOB_LOST_AFTER)
    overdue = pending.filter(Q(run_at__isnull=True) | Q(run_at__lte=since), dispatched_at__lte=since)
    queues = set(overdue.values_list("queue", flat=True).distinct())
    sizes = broker_queue_sizes(queues) if queues else None
    if not sizes:
        return []
    empty = [queue for queue, size in sizes.items() if size == 0]
    return list(overdue.filter(queue__in=empty).order_by("dispatched_at")[:limit])


def job_recover_stale(*, batch_size: int = 500) -> list[str]:
    """Recover running jobs whose heartbeat is older than JOB_STALE_AFTER: their worker died.

    Each is revoked (a cancel was waiting for it), re-queued (retries left) or failed with
    "Worker lost". Returns what happened to each: "revoked", "requeued" or "failed", and a
    "followed_up" for each lost keep_latest follow-up written (``job_follow_up_lost``).
    """
    # The database's clock, the one heartbeats are written with: a worker's skewed clock changes nothing.
    stale_before = ExpressionWrapper(Now() - timedelta(seconds=settings.JOB_STALE_AFTER), output_field=DateTimeField())
    stale = Job.objects.filter(status=RUNNING, heartbeat_at__lt=stale_before)
    fields = ("id", "attempts", "max_retries", "cancel_requested_at", "heartbeat_at", "worker")
    outcomes = []
    for job in stale.only(*fields)[:batch_size]:
        try:
            if outcome := _recover(job):
                outcomes.append(outcome)
        except Exception:
            logger.exception("Could not recover job %s; the next sweep tries again.", job.id)
    return outcomes + ["followed_up"] * job_follow_up_lost(batch_size=batch_size)


def job_follow_up_lost(*, batch_size: int = 500) -> int:
    """keep_latest's safety net: a finished job still holding a request (its finish committed without
    the follow-up: written by a version that wrote it after the commit, or a path that ends jobs
    outside the door's finish) gets its follow-up now. ``_state.follow_up`` claims the request under
    the row's lock, so two sweeps at once, or a sweep racing the finish, write it once. Returns how
    many follow-ups were written (a newer holder of the key wins: none for that one). A scan of the
    partial index ``job_follow_up_waiting``: only jobs holding a request are in it."""
    finished = Job.objects.filter(unique_follow_up__isnull=False, status__in=TERMINAL_STATUSES)
    written = 0
    for job_id in finished.order_by("finished_at").values_list("id", flat=True)[:batch_size]:
        try:
            written += follow_up(job_id) is not None
        except Exception:
            logger.exception("Could not write the follow-up of job %s; the next sweep tries again.", job_id)
    return written


def _recover(job: Job) -> str | None:
    """Revoke, re-queue or fail one job whose worker died; what happened, or None if it moved on."""
    since = f"no heartbeat from worker {job.worker or '?'} since {job.heartbeat_at:%Y-%m-%d %H:%M:%S}"
    # Fenced on the heartbeat read: a worker that beats meanwhile is alive after all.
    fence = Q(attempts=job.attempts, heartbeat_at=job.heartbeat_at)
    if job.cancel_requested_at:
        outcome = "revoked"
        done = finish_running(
            job.id,
            status=JobStatus.REVOKED,
            fence=fence,
            actor_label=SWEEPER,
            message=f"Worker lost ({since}); cancelled.",
        )
    elif job.attempts < job.max_retries:
        outcome = "requeued"
        done = requeue_running(
            job.id,
            attempts=job.attempts,
            fence=fence,
            kind=JobEventKind.REQUEUED,
            actor_label=SWEEPER,
            message=f"Worker lost ({since}); re-queued as {attempt_label(job.attempts + 1)}.",
            error=f"Worker lost: {since}.",
            error_type=WORKER_LOST,
        )
    else:
        outcome = "failed"
        done = finish_running(
            job.id,
            status=JobStatus.FAILED,
            fence=fence,
            actor_label=SWEEPER,
            message=f"Worker lost: {since}; no retries left.",
            data={"attempt": job.attempts + 1, "error": "worker lost"},
            error=f"Worker lost: {since}.",
            error_type=WORKER_LOST,
        )
    return outcome if done else None
