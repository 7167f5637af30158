"""No starvation: a job waiting too long on a lower queue is sent again to high_priority (aging).

Workers poll high_priority first (the Redis transport's "priority" order; on RabbitMQ a worker of its
own), so a steady stream of urgent/high jobs would keep a low or normal job waiting for ever. The
sweep (beat's ``promote_jobs``, every JOB_SWEEP_INTERVAL) finds pending jobs that were sent, are due
and have waited JOB_PRIORITY_MAX_WAIT minus a margin on their queue, and publishes their message
again to high_priority: the same task id (the job's id) and attempt, whatever the broker. Whichever
delivery comes first starts the job (the start is a conditional pending -> running); the other finds
it no longer pending and is dropped. Nothing else about the job changes: not its priority, its queue
(pauses and rate limits of its own queue still apply), its attempts (a promotion is not a retry) nor
``dispatched_at``; a timeline line says it was promoted, and marks it: a job is promoted once per
message (sent again later, after a retry or a rate limit's deferral, it may be promoted again).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from ..catalog import catalog
from ..models import PRIORITY_QUEUES, Job, JobEvent, JobEventKind, JobPriority, JobStatus
from ._state import event
from .dispatch import job_dispatch_to
from .gates import paused_queues

SWEEPER = "sweeper"
# Where a job that waited too long goes: the queue urgent and high jobs share, polled first.
PROMOTED_QUEUE = PRIORITY_QUEUES[JobPriority.HIGH]
LOWER_QUEUES = sorted(set(PRIORITY_QUEUES.values()) - {PROMOTED_QUEUE})
logger = logging.getLogger(__name__)


def promotion_margin(max_wait: float) -> float:
    """How long before JOB_PRIORITY_MAX_WAIT a job is promoted: a tenth of it, at least three sweep
    intervals. It covers the sweep coming up to one interval late and the promoted message's wait
    behind the high_priority messages already queued. The settings keep it at most half of ``max_wait``."""
    return max(3 * settings.JOB_SWEEP_INTERVAL, max_wait / 10)


def job_promote_waiting(*, batch_size: int = 500) -> int:
    """Send pending jobs of the lower queues that have waited too long to high_priority. How many.

    Waiting since its message was sent (``dispatched_at``), or its ``run_at`` when later (a
    countdown). Left alone: jobs not sent (held by a paused queue, deferred by a rate limit or their
    owner's fair share: their own rules hold them), on a paused queue, already promoted since their
    message was sent, or whose task is not registered (``recovery.job_dispatch_due`` fails those).
    JOB_PRIORITY_MAX_WAIT 0 turns it off.
    """
    max_wait = settings.JOB_PRIORITY_MAX_WAIT
    if not max_wait:
        return 0
    now = timezone.now()
    waited_since = now - timedelta(seconds=max_wait - promotion_margin(max_wait))
    paused = paused_queues(LOWER_QUEUES)
    queues = [queue for queue in LOWER_QUEUES if queue not in paused]
    # Promoted already: a line written after its message was sent.
    promoted = JobEvent.objects.filter(
        job_id=OuterRef("id"), kind=JobEventKind.PROMOTED, at__gte=OuterRef("dispatched_at")
    )
    waiting = (
        Job.objects.filter(status=JobStatus.PENDING, queue__in=queues, dispatched_at__lte=waited_since)
        .filter(Q(run_at__isnull=True) | Q(run_at__lte=waited_since))
        .filter(~Exists(promoted))
        .only("id", "celery_task_name", "args", "kwargs", "queue", "attempts", "run_at", "dispatched_at")
        .order_by(F("dispatched_at").asc())
    )
    jobs = [job for job in waiting[:batch_size] if job.celery_task_name in catalog]
    if not jobs:
        return 0
    now = timezone.now()  # before the send: the promoted message may start the job at once
    sent = set(job_dispatch_to(jobs=jobs, queue=PROMOTED_QUEUE))
    JobEvent.objects.bulk_create([_line(job, now, max_wait) for job in jobs if job.id in sent])
    if len(sent) < len(jobs):
        logger.warning("Promoted %d of %d waiting job(s); the broker refused the rest.", len(sent), len(jobs))
    return len(sent)


def _line(job: Job, now, max_wait: float) -> JobEvent:
    since = max(job.dispatched_at, job.run_at or job.dispatched_at)
    waited = (now - since).total_seconds()
    return event(
        job.id,
        JobEventKind.PROMOTED,
        actor_label=SWEEPER,
        at=now,
        message=(
            f"Promoted after waiting {waited:.0f} s on {job.queue}: sent again to {PROMOTED_QUEUE} "
            f"(JOB_PRIORITY_MAX_WAIT {max_wait:g} s)."
        ),
        data={"waited": round(waited, 3), "from_queue": job.queue, "to_queue": PROMOTED_QUEUE, "max_wait": max_wait},
    )
