"""Reading workflows: the ones a user may see (as for jobs: their own, or every one for staff with
``jobs.view_job``), and a workflow's steps with their parents."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import QuerySet

from accounts.models import User
from taskhub.errors import NotFound

from ..models import Job, Workflow, WorkflowDependency
from ..selectors import sees_every_job

STEP_FIELDS = (
    "id",
    "workflow_step",
    "status",
    "parents_remaining",
    "attempts",
    "progress",
    "started_at",
    "finished_at",
)


def workflow_list(*, user: User) -> QuerySet[Workflow]:
    workflows = Workflow.objects.select_related("owner")
    return workflows if sees_every_job(user) else workflows.filter(owner=user)


def workflow_get(*, user: User, workflow_id) -> Workflow:
    """The workflow if the user may see it; another user's is not found for them (404)."""
    try:
        workflow = workflow_list(user=user).filter(id=workflow_id).first()
    except Exception:  # noqa: BLE001 - not a UUID: no such workflow
        workflow = None
    if workflow is None:
        raise NotFound(f"Workflow {workflow_id} not found.")
    return workflow


def workflow_steps(*, workflow_id) -> list[dict]:
    """Each step (in creation order) with its job's state and ``after``: its parents' step ids."""
    steps = list(Job.objects.filter(workflow_id=workflow_id).order_by("created_at", "id").values(*STEP_FIELDS))
    names = {step["id"]: step["workflow_step"] for step in steps}
    parents = defaultdict(list)
    edges = WorkflowDependency.objects.filter(child__workflow_id=workflow_id).values_list("child_id", "parent_id")
    for child, parent in edges.order_by("id"):
        parents[child].append(names.get(parent, str(parent)))
    for step in steps:
        step["after"] = parents[step["id"]]
    return steps
