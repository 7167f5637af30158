"""Celery canvas's names, tracked: ``chain``, ``group``, ``chord`` build a workflow's DAG of ``step``s.

    from jobs.workflows import chain, chord, group, step, workflow_create

    fetch = step("long_running_task", id="fetch", seconds=1)
    parts = group(*(step("process_data", id=f"part-{n}", items=[n]) for n in range(200)))
    workflow_create(owner=user, name="nightly", steps=chain(fetch, chord(parts, step("long_running_task", seconds=0))))

Each builds the API's list of steps (``to_steps``); nested freely: a chain's members wait for all the
last steps of the member before, a group's members run side by side, ``chord(header, body)`` is the
body after every step of the header. A step without an id gets ``<task>-<n>``.
"""

from __future__ import annotations

from typing import Any


class Node:
    def to_steps(self) -> list[dict[str, Any]]:
        """The API's steps (``id``, ``task``, ``args``, ``kwargs``, … ``after``), parents first."""
        steps: list[dict[str, Any]] = []
        self._emit(steps, after=[], names={})
        return steps

    def _emit(self, steps: list, *, after: list[str], names: dict) -> list[str]:
        """Append this node's steps, its first ones waiting for ``after``; its last steps' ids."""
        raise NotImplementedError


class step(Node):  # noqa: N801 - canvas's lower-case names
    """One step: a catalog task with its arguments. ``id``, ``priority``, ``max_retries``, ``name``
    as a job's; positional ``args`` and keyword ``kwargs`` are the task's."""

    def __init__(
        self,
        task: str,
        *args: Any,
        id: str | None = None,
        priority: str | None = None,
        max_retries: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        self.task, self.args, self.kwargs, self.id = task, list(args), kwargs, id
        self.options = {k: v for k, v in (("priority", priority), ("max_retries", max_retries), ("name", name)) if v}

    def _emit(self, steps, *, after, names):
        step_id = self.id
        if step_id is None:
            base = str(self.task).rsplit(".", 1)[-1]
            names[base] = names.get(base, 0) + 1
            step_id = f"{base}-{names[base]}"
        steps.append(
            {
                "id": step_id,
                "task": self.task,
                "args": self.args,
                "kwargs": self.kwargs,
                "after": list(after),
                **self.options,
            }
        )
        return [step_id]


class chain(Node):  # noqa: N801
    """Each member after the one before it (after all of its last steps)."""

    def __init__(self, *members: Node):
        self.members = members

    def _emit(self, steps, *, after, names):
        for member in self.members:
            after = member._emit(steps, after=after, names=names)
        return after


class group(Node):  # noqa: N801
    """The members side by side, each after the same steps; its last steps are all of theirs."""

    def __init__(self, *members: Node):
        self.members = members

    def _emit(self, steps, *, after, names):
        last: list[str] = []
        for member in self.members:
            last += member._emit(steps, after=after, names=names)
        return last


def chord(header: Node, body: Node) -> chain:
    """``body`` once every step of ``header`` (a group, usually) has succeeded: a fan-in."""
    return chain(header, body)
