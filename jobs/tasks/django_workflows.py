"""django.tasks functions as workflow steps (README "Workflows").

    from jobs.tasks.django_workflows import task_step
    from jobs.workflows import chain, workflow_create

    workflow_create(owner=user, name="report", steps=chain(task_step(fetch, url), task_step(render, id="render")))

``task_step(task, *args, **kwargs)`` is a canvas ``step`` (``jobs.workflows.canvas``) that runs a
``@task`` function of taskhub's backend as its ``enqueue`` would: the same runner job
(``run_standard_task`` with the function's import path, its JSON-normalised arguments, priority,
queue and ``run_after``), so ``task.get_result(<the step's job id>)`` reads it with the standard API.
The step is checked and written with its workflow (``workflow_create``: the owner given there, the
owner's permissions: an urgent priority, 50 and above, needs ``jobs.submit_urgent``, as in the
API). A standard function cannot read ``parent_results``; a catalog task after it can.

Here, in the tasks layer, not in ``jobs.workflows`` (which may not import the backend).
"""

from __future__ import annotations

import copy
from typing import Any

from ..workflows.canvas import step
from .django_backend import RUNNER_TASK, standard_task, taskhub_priority
from .standard_api import Task, normalize_json


class TaskStep(step):
    """A canvas step of the runner task; without an id, numbered by the function's name (``add-1``)."""

    def __init__(self, label: str, runner: dict[str, Any], **options: Any) -> None:
        super().__init__(RUNNER_TASK, **options)
        self.label, self.kwargs = label, runner

    def _emit(self, steps, *, after, names):
        if self.id is not None:
            return super()._emit(steps, after=after, names=names)
        names[self.label] = names.get(self.label, 0) + 1
        numbered = copy.copy(self)
        numbered.id = f"{self.label}-{names[self.label]}"
        return numbered._emit(steps, after=after, names=names)


def task_step(task: Task, *args: Any, id: str | None = None, max_retries: int | None = None, **kwargs: Any) -> step:
    """A workflow step running ``task`` (a ``@task`` function of taskhub's backend) with these
    arguments; ``id`` (default: the function's name, numbered), ``max_retries`` as a catalog step's.
    TypeError for anything else, or arguments JSON cannot carry (the standard's own check)."""
    if not isinstance(task, Task):
        raise TypeError(f"task_step() takes a django.tasks Task (a function decorated with @task), got {task!r}.")
    standard_task(task.module_path)  # a function of taskhub's backend in product code (TaskRefused otherwise)
    runner = {
        "task": task.module_path,
        "args": normalize_json(list(args)),
        "kwargs": normalize_json(dict(kwargs)),
        "priority": task.priority,
        "queue_name": task.queue_name,
        "run_after": task.run_after.isoformat() if task.run_after else None,
    }
    return TaskStep(
        task.module_path.rsplit(".", 1)[-1],
        runner,
        id=id,
        priority=taskhub_priority(task.priority, task.queue_name),
        max_retries=max_retries,
        name=task.module_path[:200],
    )
