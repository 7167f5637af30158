"""What operators do to a job (API, admin, commands): cancel, retry, delete."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from taskhub.errors import Conflict, NotFound

from ..models import MANUAL_RETRY_STATUSES, PRIORITY_QUEUES, TERMINAL_STATUSES, Job, JobEventKind, JobStatus
from ._quotas import check_quota
from ._state import conflict, event, transition
from .cancelling import job_cancel  # noqa: F401 - operators' door: cancel, retry, delete
from .creation import job_build_spec
from .deduplicated import deduplicated_fold
from .labels import attempt_label, user_label

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


EDITABLE_ON_RETRY = ("args", "kwargs", "priority")


def _retry_edits(job: Job, *, by: User | None, edits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The changed keys of an edit and retry, ``{key: {"before": ..., "after": ...}}``, checked as a
    create is (the task's schema, the JSON limits, the owner's budget, urgent's permission): an
    InvalidInput names the field, before anything is written."""
    if not edits:
        return {}
    spec = job_build_spec(
        owner=job.owner,
        acting=by,
        # An unchanged priority (urgent, set by an operator) needs no permission again.
        by_application=edits.get("priority", job.priority) == job.priority,
        celery_task_name=job.celery_task_name,
        args=edits.get("args", job.args),
        kwargs=edits.get("kwargs", job.kwargs),
        priority=edits.get("priority", job.priority),
    )
    after = {"args": spec.args, "kwargs": spec.kwargs, "priority": spec.priority}
    return {key: {"before": getattr(job, key), "after": after[key]} for key in edits if getattr(job, key) != after[key]}


def job_retry(
    *,
    job_id,
    by: User | None = None,
    args: list | None = None,
    kwargs: dict | None = None,
    priority: str | None = None,
) -> Job:
    """failed/revoked/expired -> pending: the same job id runs again as the next attempt; history is
    kept. A deadline (``expires_at``) is cleared: it was the submission's, not the operator's.

    ``args``, ``kwargs``, ``priority`` (edit and retry): the attempt runs with these instead; they are
    checked as a create's are, and the retry's timeline line keeps each changed key before and after."""
    job = (
        Job.objects.filter(id=job_id)
        .select_related("owner")
        .only("status", "attempts", "error", "owner", "celery_task_name", "args", "kwargs", "priority", "expires_at")
        .first()
    )
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    edits = {
        key: value for key, value in (("args", args), ("kwargs", kwargs), ("priority", priority)) if value is not None
    }
    changed = _retry_edits(job, by=by, edits=edits)
    new_values = {key: change["after"] for key, change in changed.items()}
    if "priority" in new_values:
        new_values["queue"] = PRIORITY_QUEUES[new_values["priority"]]
    data = {"previous_error": job.error, "attempt": job.attempts + 2}
    message = f"Retried by {user_label(by)} ({attempt_label(job.attempts + 1)})"
    if changed:
        data["changes"] = changed
        message += f"; changed {', '.join(changed)}"
    if job.expires_at is not None:
        # An operator's retry is a new decision: the submission's deadline no longer applies.
        data["expires_at_cleared"] = job.expires_at.isoformat()
        message += "; its deadline (expires_at) cleared"
    with transaction.atomic():
        if by is not None and by.pk == job.owner_id:
            # A retry makes the job active again: it counts against its owner's quota (not a new submission).
            check_quota(by, count=1, now=timezone.now(), submitted=False)
        retried = transition(
            job_id,
            sources=list(MANUAL_RETRY_STATUSES),
            where=Q(attempts=job.attempts),
            send=True,
            changes={
                "status": PENDING,
                "attempts": job.attempts + 1,
                "progress": 0,
                "progress_meta": {},
                "result": None,
                "error": "",
                "error_type": "",
                "traceback": "",
                "run_at": None,
                "expires_at": None,
                "dispatched_at": None,
                "started_at": None,
                "finished_at": None,
                "heartbeat_at": None,
                "cancel_requested_at": None,
                "cancelled_by": None,
                "worker": "",
                "concurrency_waiting_since": None,
                **new_values,
            },
            event=event(
                job_id,
                JobEventKind.RETRIED,
                from_status=job.status,
                to_status=PENDING,
                actor=by,
                data=data,
                message=message + ".",
            ),
        )
        # Read before the commit sends the message: the answer is the retry as written (pending, the
        # next attempt), not whatever a fast worker has made of it since.
        answer = Job.objects.get(id=job_id) if retried else None
    if answer is None:
        raise conflict(job_id, "retry")
    return answer


def job_delete(*, job_id) -> None:
    """Delete a finished job and its timeline. An active job must be cancelled first (409)."""
    # A workflow's step goes only with its workflow (never half a workflow: its children would wait forever).
    with transaction.atomic():
        finished = Job.objects.filter(id=job_id, status__in=list(TERMINAL_STATUSES), workflow__isnull=True)
        deduplicated_fold(finished)  # its duplicates stay counted (/metrics)
        deleted, _ = finished.delete()
    if deleted:
        return
    status, workflow_id = Job.objects.filter(id=job_id).values_list("status", "workflow_id").first() or (None, None)
    if status is None:
        raise NotFound(f"Job {job_id} does not exist.")
    if workflow_id is not None:
        raise Conflict(
            f"Job {job_id} is a step of workflow {workflow_id}: it is deleted with it.", code="workflow_step"
        )
    raise Conflict(f"Job {job_id} is {status}: cancel it first, then delete it.", code="job_active")
