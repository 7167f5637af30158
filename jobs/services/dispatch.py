"""Publishing a job's message to the broker. Called after commit, never inside a transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from amqp.exceptions import ChannelError
from celery import current_app
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from ..catalog import catalog
from ..models import Job
from .gates import paused_queues

logger = logging.getLogger(__name__)


def job_dispatch(*, jobs: Iterable[Job]) -> list:
    """Publish each job's message; mark the ones the broker took. Never raises for a broker outage.

    Returns the ids sent. A job due later than the next sweep is left for the sweeper, and a job
    whose queue is paused stays unsent until the queue is resumed (``jobs.queues.services``).
    """
    jobs, sent, now = list(jobs), [], timezone.now()  # now: also the dispatch time recorded below
    paused = paused_queues({job.queue for job in jobs}, fresh=False) if jobs else set()
    for job in jobs:
        if job.queue in paused:
            continue  # held: resuming the queue sends it
        if job.run_at and job.run_at > now + timedelta(seconds=settings.JOB_SWEEP_INTERVAL):
            continue  # far in the future: the sweeper sends it when it is due
        if job.celery_task_name not in catalog:
            logger.error("Job %s names task %s, which is not registered: not sent.", job.id, job.celery_task_name)
            continue  # the sweeper fails it with the reason (recovery.job_dispatch_due)
        entry = catalog.get(job.celery_task_name)
        countdown = max(0.0, (job.run_at - now).total_seconds()) if job.run_at else None
        try:
            entry.celery_task.apply_async(
                args=job.args,
                kwargs=job.kwargs,
                task_id=str(job.id),
                queue=job.queue,
                countdown=countdown,
                soft_time_limit=entry.soft_time_limit,
                time_limit=entry.time_limit + 60,
                retry=False,
                # The attempt this message is for: a late duplicate cannot start a later attempt.
                headers={"taskhub_attempts": job.attempts},
            )
        except Exception as exc:  # noqa: BLE001 - any publish failure: leave it to the sweeper
            logger.warning("Broker unreachable, job %s stays unsent for the sweeper: %s", job.id, exc)
            break
        sent.append(job.id)
    if sent:
        try:
            # No status condition: a fast worker may have started the job already.
            Job.objects.filter(id__in=sent).update(dispatched_at=now)
        except DatabaseError as exc:
            # The jobs are committed and sent; only the send time is missing. Raising here (after
            # commit) would turn a created job into a 500 that a client would retry as a duplicate.
            # The sweeper sends them again later, which is harmless: one delivery runs a job.
            logger.warning("Sent %d job(s) but could not record it: %s", len(sent), exc)
            return sent
        sent_ids = set(sent)
        for job in jobs:
            if job.id in sent_ids:
                job.dispatched_at = now
    return sent


def broker_queue_sizes(queues: Iterable[str]) -> dict[str, int] | None:
    """Messages waiting in each queue (not those a worker holds), or None when the broker cannot
    be asked. The sweeper uses it to tell a lost message from one waiting in a backlog."""
    sizes = {}
    try:
        with current_app.connection_for_read() as connection:
            for queue in queues:
                with connection.channel() as channel:  # a refused declare closes its channel (AMQP)
                    try:
                        sizes[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                    except ChannelError:
                        sizes[queue] = 0  # no such queue: nothing waits in it (Redis drops empty lists)
    except Exception as exc:  # noqa: BLE001 - any broker failure: nothing is decided this sweep
        logger.warning("Cannot read the broker's queue sizes: %s", exc)
        return None
    return sizes
