"""Creating, cancelling and retrying workflows: the graph is checked whole before anything is written.

A request is a name, an ``on_failure`` policy and a list of steps (``{"id", "task", "args", "kwargs",
"priority", "max_retries", "name", "after"}``, the API's JSON; ``jobs.workflows.canvas`` builds the same
from chain/group/chord). Each step is checked as a job request is (``creation.job_build_spec``: the
catalog, the task's parameters, the JSON limits, urgent's permission), then the graph: unknown or
duplicate step ids, unknown ``after``, a cycle, an empty workflow, more than ``WORKFLOW_MAX_STEPS``
steps. Any problem is an InvalidInput naming the step (``steps[i]``, its id) and the field; nothing is
written. Then the engine writes it in one transaction (``jobs.services.workflows``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from accounts.models import User
from taskhub.errors import ApplicationError, InvalidInput

from ..models import Workflow, WorkflowOnFailure
from ..services.creation import JobSpec, job_build_spec
from ..services.workflows import job_workflow_cancel, job_workflow_create, job_workflow_retry
from . import selectors

STEP_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
STEP_FIELDS = {"id", "task", "args", "kwargs", "priority", "max_retries", "name", "after"}
# The job request's field names as a step spells them.
_STEP_FIELD = {"celery_task_name": "task"}


def _invalid(field: str, message: str, code: str = "invalid") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, fields={field: [message]})


def _step_error(index: int, step_id: Any, field: str, message: str, code: str = "invalid") -> InvalidInput:
    where = f"steps[{index}].{field}"
    named = f" (step {step_id!r})" if isinstance(step_id, str) else ""
    return InvalidInput(f"{where}{named}: {message}", code=code, fields={where: [message]})


def _check_step(owner: User, index: int, step: Any) -> tuple[str, JobSpec, list[str]]:
    if not isinstance(step, Mapping):
        raise _invalid(f"steps[{index}]", f"must be an object with at least id and task, got {type(step).__name__}.")
    step_id = step.get("id")
    if not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id):
        raise _step_error(index, step_id, "id", "Give the step an id: 1-100 letters, digits, '_', '.', ':' or '-'.")
    unknown = sorted(set(step) - STEP_FIELDS)
    if unknown:
        raise _step_error(index, step_id, unknown[0], f"Unknown field. Allowed: {', '.join(sorted(STEP_FIELDS))}.")
    after = step.get("after") or []
    if not isinstance(after, list) or not all(isinstance(parent, str) for parent in after):
        raise _step_error(index, step_id, "after", "Must be a list of step ids.")
    if len(set(after)) != len(after):
        raise _step_error(index, step_id, "after", "Names a step twice.")
    if not isinstance(step.get("task"), str):
        raise _step_error(index, step_id, "task", "Give the task's name (GET /api/v1/task-catalog/ lists them).")
    try:
        spec = job_build_spec(
            owner=owner,
            celery_task_name=step["task"],
            name=step.get("name") or step_id,
            args=step.get("args"),
            kwargs=step.get("kwargs"),
            priority=step.get("priority"),
            max_retries=step.get("max_retries"),
        )
    except ApplicationError as exc:
        field, messages = next(iter(exc.fields.items()), ("task", [exc.message]))
        error = _step_error(index, step_id, _STEP_FIELD.get(field, field), messages[0], exc.code)
        error.status_code = exc.status_code
        raise error from exc
    return step_id, spec, after


def _check_graph(steps: list[tuple[str, JobSpec, list[str]]]) -> None:
    """Unknown ``after`` and cycles, each named by its step (Kahn's order: what is left is in a cycle)."""
    index = {step_id: i for i, (step_id, _, _) in enumerate(steps)}
    for i, (step_id, _, after) in enumerate(steps):
        for parent in after:
            if parent not in index:
                raise _step_error(i, step_id, "after", f"No step has the id {parent!r}.", "unknown_step")
    remaining = {step_id: len(after) for step_id, _, after in steps}
    children: dict[str, list[str]] = {}
    for step_id, _, after in steps:
        for parent in after:
            children.setdefault(parent, []).append(step_id)
    ready = [step_id for step_id, count in remaining.items() if count == 0]
    while ready:
        for child in children.get(ready.pop(), ()):
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    cycle = [step_id for step_id, count in remaining.items() if count]
    if cycle:
        first = min(cycle, key=index.__getitem__)
        raise _step_error(
            index[first],
            first,
            "after",
            f"The steps {', '.join(sorted(cycle))} depend on each other (a cycle).",
            "cycle",
        )


def workflow_create(
    *, owner: User, name: str, steps: Sequence[Mapping[str, Any]] | Any, on_failure: str = "cancel_dependents"
) -> Workflow:
    """Check a workflow request whole, then write it (one transaction) and send the steps that wait for
    nothing. ``steps``: the API's list of step objects, or a canvas (``chain``, ``group``, ``chord``)."""
    if hasattr(steps, "to_steps"):
        steps = steps.to_steps()
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise _invalid("name", "Give the workflow a name of 1-200 characters.")
    if on_failure not in WorkflowOnFailure.values:
        raise _invalid("on_failure", f"Must be one of {', '.join(WorkflowOnFailure.values)}, got {on_failure!r}.")
    if not isinstance(steps, Sequence) or isinstance(steps, (str, bytes)) or not steps:
        raise _invalid("steps", "Give at least one step.", "empty")
    if len(steps) > settings.WORKFLOW_MAX_STEPS:
        message = f"At most {settings.WORKFLOW_MAX_STEPS} steps per workflow (WORKFLOW_MAX_STEPS), got {len(steps)}."
        raise _invalid("steps", message, "too_many")
    checked, seen = [], {}
    for index, step in enumerate(steps):
        step_id, spec, after = _check_step(owner, index, step)
        if step_id in seen:
            raise _step_error(
                index, step_id, "id", f"Duplicate step id: steps[{seen[step_id]}] has it too.", "duplicate"
            )
        seen[step_id] = index
        checked.append((step_id, spec, after))
    for entry in {spec.entry.name: spec.entry for _, spec, _ in checked}.values():  # the workflow's jobs together
        entry.check_budget(owner, [(spec.args, spec.kwargs) for _, spec, _ in checked if spec.entry is entry])
    _check_graph(checked)
    workflow, _ = job_workflow_create(owner=owner, name=name, on_failure=on_failure, steps=checked)
    return workflow


def workflow_cancel(*, user: User, workflow_id) -> Workflow:
    """Cancel every unfinished step (one transaction; running ones get the durable cancel)."""
    workflow = selectors.workflow_get(user=user, workflow_id=workflow_id)
    job_workflow_cancel(workflow_id=workflow.id, by=user)
    return selectors.workflow_get(user=user, workflow_id=workflow.id)


def workflow_retry(*, user: User, workflow_id) -> Workflow:
    """Re-run the failed steps and those cancelled; succeeded steps keep their results and attempts."""
    workflow = selectors.workflow_get(user=user, workflow_id=workflow_id)
    job_workflow_retry(workflow_id=workflow.id, by=user)
    return selectors.workflow_get(user=user, workflow_id=workflow.id)
