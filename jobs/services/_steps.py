"""The door's part for workflow steps (``jobs/models/workflows.py``): what follows a step's change in
its workflow, in the same transaction as the change.

- A step's success decrements its children's ``parents_remaining``; the children that reach 0 are sent
  after commit. On PostgreSQL that is part of the success's one statement (``_sql._WORKFLOW_RELEASE``);
  ``release`` is the ORM path (SQLite).
- A step that ends failed or revoked (``_state.transition``): under ``cancel_dependents`` every
  descendant still waiting is revoked with the reason on its timeline (``descendants``,
  ``revoke_waiting``); then the workflow's counts and status are recounted (``refresh``).
- A workflow's cancel and retry (``services/workflows.py``) change all its steps at once (``change_many``).

Locks are always taken job rows first, then the workflow's row; a step's own row before the rows of
other steps (its children, its dependents), those in the order of their ids (``change_many``, the
success's ``_sql._WORKFLOW_RELEASE``); a cancel's running steps before its waiting ones
(``lock_unfinished``): no deadlock between finishes of parents sharing children, nor with a cancel.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Case, Count, F, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from accounts.models import User

from ..live import jobs_changed
from ..models import (
    Job,
    JobEvent,
    JobStatus,
    Workflow,
    WorkflowDependency,
    WorkflowStatus,
)
from . import _sql
from ._state_effects import materialize, materializes
from .dispatch import job_dispatch

PENDING, RUNNING, SUCCEEDED, FAILED, REVOKED = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.REVOKED,
)
# The ends of a step after which its workflow is recounted (and its dependents cancelled, by policy).
STEP_ENDS = (FAILED, REVOKED)


def send_released(job_ids: list) -> None:
    """Children whose last parent just succeeded: published, and sent once the transaction commits."""
    if not job_ids:
        return
    jobs_changed(job_ids)
    transaction.on_commit(lambda: job_dispatch(jobs=Job.objects.filter(id__in=job_ids, status=PENDING)))


def release(job_id, *, at: datetime | Now) -> list:
    """ORM path of ``_sql._WORKFLOW_RELEASE`` (inside the success's transaction): the children of
    ``job_id`` one parent closer, the workflow's success counted; the ids of the children now at 0."""
    workflow_id = Job.objects.filter(id=job_id).values_list("workflow_id", flat=True).first()
    if workflow_id is None:
        return []
    children = list(WorkflowDependency.objects.filter(parent_id=job_id).values_list("child_id", flat=True))
    Job.objects.filter(id__in=children).update(parents_remaining=F("parents_remaining") - 1)
    released = list(Job.objects.filter(id__in=children, parents_remaining=0).values_list("id", flat=True))
    flow = Workflow.objects.filter(id=workflow_id)
    flow.update(steps_succeeded=F("steps_succeeded") + 1)
    flow.filter(
        steps_succeeded__gte=F("steps_total"), status__in=[WorkflowStatus.PENDING, WorkflowStatus.RUNNING]
    ).update(status=WorkflowStatus.SUCCEEDED, finished_at=at)
    return released


def started(job_id) -> None:
    """ORM path of ``_sql._WORKFLOW_STARTED``: the step's workflow is running from its first start."""
    workflow_id = Job.objects.filter(id=job_id).values_list("workflow_id", flat=True).first()
    if workflow_id is not None:
        Workflow.objects.filter(id=workflow_id, status=WorkflowStatus.PENDING).update(status=WorkflowStatus.RUNNING)


def descendants(job_ids: Iterable) -> list:
    """Every step that depends on one of ``job_ids``, directly or not: a recursive CTE on PostgreSQL,
    one query per generation elsewhere."""
    job_ids = list(job_ids)
    if not job_ids:
        return []
    if _sql.available():
        return _sql.descendants(job_ids)
    found, frontier = set(), set(job_ids)
    while frontier:
        children = set(WorkflowDependency.objects.filter(parent_id__in=frontier).values_list("child_id", flat=True))
        frontier = children - found
        found |= frontier
    return list(found)


def change_many(query, *, changes: dict, line: JobEvent) -> list:
    """``query.update(**changes)`` with a copy of ``line`` (built by ``_state.event``) on each updated
    job's timeline, in one statement on PostgreSQL; the ids updated, published after commit. Steps sent
    round again write the lines their rows derived so far first (``_state_effects.materialize``)."""
    if materializes(changes):
        with transaction.atomic():
            materialize(query)
            return _change_many(query, changes, line)
    return _change_many(query, changes, line)


def _change_many(query, changes: dict, line: JobEvent) -> list:
    if _sql.available():
        ids = _sql.update_many_with_event(query, changes, line)
    else:
        ids = list(query.values_list("id", flat=True))
        if ids:
            Job.objects.filter(id__in=ids).update(**changes)
            fields = {f.attname: getattr(line, f.attname) for f in JobEvent._meta.concrete_fields if not f.primary_key}
            JobEvent.objects.bulk_create([JobEvent(**{**fields, "job_id": job_id}) for job_id in ids])
    if ids:
        jobs_changed(ids)
    return ids


def lock_unfinished(query) -> None:
    """Lock the running, then the pending steps of ``query`` (each in the order of their ids), for the
    rest of the transaction: what a workflow's cancel does first. A step's success holds its own
    (running) row while it locks its (pending) children by id; a cancel that locked those children
    first, then waited for the running row, deadlocked with it. One statement: a step that starts
    meanwhile is locked too (its new version, running), so the cancel's stop reaches it."""
    waiting_last = Case(When(status=PENDING, then=Value(1)), default=Value(0))
    unfinished = query.filter(status__in=[RUNNING, PENDING]).order_by(waiting_last, "id")
    list(unfinished.select_for_update(no_key=True).values_list("id", flat=True))


def revoke_waiting(query, *, line: JobEvent, by: User | None) -> list:
    """The pending (waiting or not) jobs of ``query`` revoked, ``line`` on each timeline; the ids.
    Their times are the database's clock (the line's too, unless it names one)."""
    return change_many(
        query.filter(status=PENDING),
        changes={"status": REVOKED, "finished_at": Now(), "cancel_requested_at": Now(), "cancelled_by": by},
        line=line,
    )


def cascade_policy(workflow_id) -> str | None:
    """The workflow's ``on_failure`` (None when it is gone)."""
    return Workflow.objects.filter(id=workflow_id).values_list("on_failure", flat=True).first()


def refresh(workflow_id, *, reopen: bool = False) -> Workflow | None:
    """Recount the workflow's steps by status and derive its status, its row locked for the rest of
    the transaction (after the steps' rows: the lock order). ``reopen``: a cancelled workflow is
    derived again (a retry) instead of staying cancelled."""
    flow = Workflow.objects.select_for_update().filter(id=workflow_id).first()
    if flow is None:
        return None
    counts = dict(Job.objects.filter(workflow_id=workflow_id).values_list("status").annotate(n=Count("id")).order_by())
    flow.steps_succeeded = counts.get(SUCCEEDED, 0)
    flow.steps_failed = counts.get(FAILED, 0)
    flow.steps_cancelled = counts.get(REVOKED, 0)
    started = flow.steps_finished or counts.get(RUNNING, 0)
    if flow.steps_succeeded >= flow.steps_total:
        status = WorkflowStatus.SUCCEEDED
    elif flow.status == WorkflowStatus.CANCELLED and not reopen:
        status = WorkflowStatus.CANCELLED
    elif flow.steps_failed:
        status = WorkflowStatus.FAILED
    elif flow.steps_cancelled:
        status = WorkflowStatus.CANCELLED
    else:
        status = WorkflowStatus.RUNNING if started else WorkflowStatus.PENDING
    finished = status in (WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)
    flow.finished_at = (flow.finished_at or timezone.now()) if finished else None
    flow.status = status
    flow.save(update_fields=["steps_succeeded", "steps_failed", "steps_cancelled", "status", "finished_at"])
    return flow
