"""Workflows' writes on their steps: create a DAG of jobs, cancel it, retry it.

The graph is checked by ``jobs/workflows/services.py`` before it gets here (each step's ``JobSpec``
from ``creation.job_build_spec``, the edges acyclic). Here it is written in one transaction: the
workflow's row, its steps through the door's bulk create (``_state.create``: the steps without parents
are sent, the others wait with ``parents_remaining``), the edges in one INSERT. Cancel and retry change
every step concerned in one statement each (``_steps.change_many``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from accounts.models import User
from taskhub.errors import Conflict

from ..models import (
    MANUAL_RETRY_STATUSES,
    Job,
    JobEventKind,
    JobStatus,
    Workflow,
    WorkflowDependency,
    WorkflowStatus,
)
from . import _state, _steps
from ._quotas import check_quota
from ._state import event
from .creation import JobSpec, created_event

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


def job_workflow_create(
    *, owner: User, name: str, on_failure: str, steps: Sequence[tuple[str, JobSpec, Sequence[str]]]
) -> tuple[Workflow, dict[str, Job]]:
    """Write a checked DAG: ``steps`` are (step id, spec, parent step ids), parents listed before
    their children. Returns the workflow and its jobs by step id."""
    now = timezone.now()
    workflow = Workflow(owner=owner, name=name, on_failure=on_failure, created_at=now, steps_total=len(steps))
    jobs: dict[str, Job] = {}
    for index, (step_id, spec, after) in enumerate(steps):
        job = spec.build(owner=owner, now=now + timedelta(microseconds=index))
        job.workflow, job.workflow_step, job.parents_remaining = workflow, step_id, len(after)
        jobs[step_id] = job
    edges = [
        WorkflowDependency(parent_id=jobs[parent].id, child_id=jobs[step_id].id)
        for step_id, _, after in steps
        for parent in after
    ]
    how = f" as step of workflow {name!r}"
    with transaction.atomic():
        # Every step is submitted (the per-minute quota); only those without parents are active now:
        # the others count once released, and a release is never refused (README "Workflows").
        check_quota(owner, count=len(jobs), now=now, runnable=sum(1 for _, _, after in steps if not after))
        workflow.save(force_insert=True)
        WorkflowDependency.objects.bulk_create(edges, batch_size=5000)
        _state.create(list(jobs.values()), [created_event(job, how=how) for job in jobs.values()])
    return workflow, jobs


def job_workflow_cancel(*, workflow_id, by: User | None = None) -> dict[str, int]:
    """Every unfinished step in one transaction: the waiting and pending ones revoked (never sent nor
    started afterwards), the running ones given the durable cancel (they stop at their next progress
    report or heartbeat). How many of each. A finished workflow is a Conflict."""
    with transaction.atomic():
        status = Workflow.objects.filter(id=workflow_id).values_list("status", flat=True).first()
        if status in (WorkflowStatus.SUCCEEDED, WorkflowStatus.CANCELLED):
            raise Conflict(f"Cannot cancel workflow {workflow_id}: it is {status}.", code="invalid_state")
        steps = Job.objects.filter(workflow_id=workflow_id)
        _steps.lock_unfinished(steps)
        revoked = _steps.revoke_waiting(
            steps,
            by=by,
            line=event(
                None,
                JobEventKind.REVOKED,
                from_status=PENDING,
                to_status=JobStatus.REVOKED,
                actor=by,
                message="Cancelled with its workflow before it started.",
            ),
        )
        stopping = _steps.change_many(
            steps.filter(status=RUNNING, cancel_requested_at__isnull=True),
            # The database's clock: the worker measures the grace period from it with the same clock.
            changes={"cancel_requested_at": Now(), "cancelled_by": by},
            line=event(
                None,
                JobEventKind.CANCEL_REQUESTED,
                from_status=RUNNING,
                to_status=RUNNING,
                actor=by,
                message="Cancel requested with its workflow; it stops at its next progress report or heartbeat.",
            ),
        )
        Workflow.objects.filter(id=workflow_id).update(status=WorkflowStatus.CANCELLED)
        _steps.refresh(workflow_id)
    return {"revoked": len(revoked), "stopping": len(stopping)}


# What a retried step starts from: a new attempt, nothing of the last one but its timeline.
_RETRY_CHANGES = {
    "status": PENDING,
    "progress": 0,
    "progress_meta": {},
    "result": None,
    "error": "",
    "error_type": "",
    "traceback": "",
    "run_at": None,
    "dispatched_at": None,
    "started_at": None,
    "finished_at": None,
    "heartbeat_at": None,
    "cancel_requested_at": None,
    "cancelled_by": None,
    "worker": "",
}


def job_workflow_retry(*, workflow_id, by: User | None = None) -> list:
    """The failed steps and the steps cancelled (because of them, or with the workflow) back to pending
    as their next attempt, in one transaction; succeeded steps keep their results and attempts. Those
    whose parents have all succeeded are sent after commit, the others wait for them again. The ids
    retried; a workflow with nothing to retry is a Conflict."""
    now = timezone.now()
    retried: list = []
    with transaction.atomic():
        owner_id = Workflow.objects.filter(id=workflow_id).values_list("owner_id", flat=True).first()
        again = Job.objects.filter(workflow_id=workflow_id, status__in=list(MANUAL_RETRY_STATUSES))
        count = again.count()
        if not count:
            raise Conflict(f"Workflow {workflow_id} has no failed or cancelled step to retry.", code="invalid_state")
        if by is not None and by.pk == owner_id:  # the steps that still wait for a parent are not active
            check_quota(by, count=count, now=now, submitted=False, runnable=again.filter(parents_remaining=0).count())
        for status in MANUAL_RETRY_STATUSES:
            retried += _steps.change_many(
                Job.objects.filter(workflow_id=workflow_id, status=status),
                changes={**_RETRY_CHANGES, "attempts": F("attempts") + 1},
                line=event(
                    None,
                    JobEventKind.RETRIED,
                    from_status=status,
                    to_status=PENDING,
                    actor=by,
                    message="Retried with its workflow.",
                ),
            )
        _steps.refresh(workflow_id, reopen=True)
        _steps.send_released(retried)
    return retried
