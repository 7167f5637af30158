"""The durable cancel (API, admin, commands, and a cancel_running key's newer job): its own module,
so that creation (uniqueness) and operations both use it without importing each other."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now

from accounts.models import User
from taskhub.errors import Conflict, NotFound

from ..catalog import catalog
from ..models import Job, JobEventKind, JobStatus
from ._state import event, transition

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


def _how_it_stops(celery_task_name: str) -> str:
    grace = settings.JOB_CANCEL_GRACE_SECONDS
    if celery_task_name in catalog and not catalog.get(celery_task_name).cancellable:
        return "the task reports no progress, so it is terminated at its next heartbeat"
    return f"the job stops at its next progress report or is terminated after {grace:g}s"


def job_cancel(*, job_id, by: User | None = None, reason: str = "") -> Job:
    """Cancel durably: a pending job is revoked at once (it will never start); a running job is
    marked cancel-requested and stops at its next progress call, or is terminated after the
    grace period (at once when its task is not cancellable cooperatively).

    The job may move between the two attempts (started, or re-queued by the sweeper or a retry):
    the cancel follows it a few times rather than report a state it left a moment ago.
    ``reason``: why, added to the timeline line (a newer job of a cancel_running key).
    """
    for _ in range(3):
        # Every time written is the database's clock (the lines' too): the web host's may be off.
        if transition(
            job_id,
            sources=[PENDING],
            changes={
                "status": JobStatus.REVOKED,
                "cancel_requested_at": Now(),
                "cancelled_by": by,
                "finished_at": Now(),
            },
            event=event(
                job_id,
                JobEventKind.REVOKED,
                from_status=PENDING,
                to_status=JobStatus.REVOKED,
                actor=by,
                message=f"Cancelled before it started{reason}.",
            ),
        ):
            return Job.objects.get(id=job_id)
        job = Job.objects.filter(id=job_id).only("status", "celery_task_name", "cancel_requested_at").first()
        if job is None:
            raise NotFound(f"Job {job_id} does not exist.")
        if job.status != RUNNING:
            if job.status == PENDING:
                continue  # re-queued meanwhile: revoke it as a pending job
            raise Conflict(f"Cannot cancel job {job_id}: it already {job.status}.", code="invalid_state")
        if job.cancel_requested_at:
            raise Conflict(
                f"Job {job_id} is already being cancelled (requested at {job.cancel_requested_at:%Y-%m-%d %H:%M:%S}).",
                code="cancel_pending",
            )
        if transition(
            job_id,
            sources=[RUNNING],
            where=Q(cancel_requested_at__isnull=True),
            # The database's clock: the worker measures the grace period from it with the same clock.
            changes={"cancel_requested_at": Now(), "cancelled_by": by},
            event=event(
                job_id,
                JobEventKind.CANCEL_REQUESTED,
                from_status=RUNNING,
                to_status=RUNNING,
                actor=by,
                message=f"Cancel requested{reason}; {_how_it_stops(job.celery_task_name)}.",
            ),
        ):
            return Job.objects.get(id=job_id)
    raise Conflict(f"Job {job_id} keeps changing state; try the cancel again.", code="conflict")
