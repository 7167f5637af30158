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
from ._confirms import Confirms
from .gates import paused_queues

logger = logging.getLogger(__name__)


def job_dispatch(*, jobs: Iterable[Job]) -> list:
    """Publish each job's message; mark the ones the broker took. Never raises for a broker outage.

    Returns the ids sent. A job due later than the next sweep is left for the sweeper, and a job
    whose queue is paused stays unsent until the queue is resumed (``jobs.queues.services``).
    Called after commit (the sweeper, a retry, a resume, a job created inside a caller's larger
    transaction): the send time is written after the send.
    """
    jobs = list(jobs)
    now = timezone.now()  # also the dispatch time recorded below
    sent = _publish(sendable(jobs, now=now), now=now)
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


def sendable(jobs: list[Job], *, now) -> list[Job]:
    """The jobs whose message goes now: not workflow steps waiting for their parents, not on a paused
    queue (held until it is resumed), not due after the next sweep (the sweeper sends it then), their
    task registered (the sweeper fails the others with the reason, ``recovery.job_dispatch_due``)."""
    paused = paused_queues({job.queue for job in jobs}, fresh=False) if jobs else set()
    chosen = []
    for job in jobs:
        if job.parents_remaining:  # a workflow step waiting for its parents: their success sends it
            continue
        if job.queue in paused:
            continue
        if job.run_at and job.run_at > now + timedelta(seconds=settings.JOB_SWEEP_INTERVAL):
            continue
        if job.celery_task_name not in catalog:
            logger.error("Job %s names task %s, which is not registered: not sent.", job.id, job.celery_task_name)
            continue
        chosen.append(job)
    return chosen


def job_dispatch_in_transaction(*, jobs: list[Job], creator_lock: int) -> None:
    """Publish new jobs' messages inside the transaction that inserts them, before its commit.

    The rows were inserted with ``dispatched_at`` already set on the sendable ones (``sendable``),
    so a job that is sent costs no second write. A job the broker refused gets its stamp cleared
    here, in the same transaction: the sweeper sends it later. The transaction holds the advisory
    lock ``creator_lock``, named in each message: a worker that receives a message before the
    commit (the row not visible yet) waits for that lock, then looks again; if the transaction
    rolled back, or the process died before its commit, there is no row and the message is dropped.
    So no window is left between the commit and the send in which a process could die.
    """
    stamped = [job for job in jobs if job.dispatched_at is not None]
    sent = set(_publish(stamped, now=timezone.now(), creator_lock=creator_lock))
    refused = [job for job in stamped if job.id not in sent]
    if refused:
        Job.objects.filter(id__in=[job.id for job in refused]).update(dispatched_at=None)
        for job in refused:
            job.dispatched_at = None


def job_dispatch_to(*, jobs: Iterable[Job], queue: str) -> list:
    """Publish each job's message again, to ``queue`` instead of its own (the same task id and
    attempt: whichever delivery comes first starts the job, the other is dropped). Returns the ids
    sent; never raises for a broker outage. The job's own message and ``dispatched_at`` are left as
    they are: ``promotion.job_promote_waiting`` sends a job that waited too long to high_priority."""
    return _publish(list(jobs), now=timezone.now(), queue=queue)


def _publish(jobs: list[Job], *, now, creator_lock: int | None = None, queue: str | None = None) -> list:
    """Send each job's message (to ``queue``, or its own), stopping at the first refusal (the broker
    is down: the sweeper sends the rest). Returns the ids sent.

    The messages go through one producer in a publish batch (kombu's ``Producer.batch``): on Redis
    they are one pipeline, one round trip for a bulk create's messages; on a transport without
    batches (RabbitMQ) each is published at once, then their publisher confirms are awaited together
    (``_confirms``): only the confirmed count as sent. A batch whose round trip fails sent none of its
    messages as far as we know (Redis' "delivery is uncertain"): all are left to the sweeper, and a
    message that did arrive meanwhile is a duplicate that the start's fencing drops."""
    if not jobs:
        return []
    confirms = None
    try:
        with current_app.producer_or_acquire() as pooled:
            confirms = Confirms(pooled)
            producer = confirms.producer
            with producer.batch():
                for job in jobs:
                    entry = catalog.get(job.celery_task_name)
                    countdown = max(0.0, (job.run_at - now).total_seconds()) if job.run_at else None
                    # The attempt this message is for: a late duplicate cannot start a later attempt.
                    headers = {"taskhub_attempts": job.attempts}
                    if creator_lock is not None:
                        headers["taskhub_creator_lock"] = creator_lock
                    try:
                        entry.celery_task.apply_async(
                            args=job.args,
                            kwargs=job.kwargs,
                            task_id=str(job.id),
                            queue=queue or job.queue,
                            countdown=countdown,
                            soft_time_limit=entry.soft_time_limit,
                            time_limit=entry.time_limit + 60,
                            retry=False,
                            headers=headers,
                            producer=producer,
                        )
                    except Exception as exc:  # noqa: BLE001 - any publish failure: leave it to the sweeper
                        logger.warning("Broker unreachable, job %s stays unsent for the sweeper: %s", job.id, exc)
                        break
                    confirms.published(job.id)
            sent, answered = confirms.wait(settings.BROKER_CONFIRM_TIMEOUT)
            if not answered:
                # Not used again: its unconfirmed messages may still arrive, with their confirms, which
                # a next send on it would take for its own. The next send opens a new connection.
                logger.warning(
                    "Broker did not confirm %d of %d messages within %g s: their jobs stay unsent for the sweeper.",
                    len(confirms.ids) - len(sent),
                    len(confirms.ids),
                    settings.BROKER_CONFIRM_TIMEOUT,
                )
                pooled.connection.collect()
    except Exception as exc:  # noqa: BLE001 - the batch's round trip (or the producer) failed
        written = len(confirms.ids) if confirms else 0
        logger.warning("Broker unreachable, %d jobs stay unsent for the sweeper: %s", written, exc)
        return []
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
