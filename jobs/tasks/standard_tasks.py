"""The one catalog task that runs ``django.tasks`` functions (``@task``) on a worker, by import path.

The job's ``task`` argument must name a module-level function decorated with ``@task`` for a
taskhub backend (``django_backend.standard_task``); anything else, e.g. a crafted message naming
``os.system``, fails the job with the reason before anything is called. Django's
``task_started`` / ``task_finished`` signals fire around each attempt, in the worker.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import Ignore

from taskhub.errors import InvalidInput

from ..services.execution import job_fail_unstarted
from .base import JobTask
from .django_backend import (
    RUNNER_TASK,
    TaskhubBackend,
    TaskhubTaskContext,
    TaskRefused,
    exception_name,
    standard_task,
)
from .registry import job_task
from .standard_api import task_backends, task_finished, task_started

logger = logging.getLogger(__name__)


def _backend(task) -> TaskhubBackend:
    return task_backends[task.backend]


def _send(signal, backend: TaskhubBackend, job_id: str) -> None:
    """Send a standard signal with the job's result as the row has it now. A receiver that raises
    is logged: it cannot change the job's outcome."""
    result = backend.get_result(job_id)
    for receiver, response in signal.send_robust(type(backend), task_result=result):
        if isinstance(response, Exception):
            logger.error("Receiver %r of a django.tasks signal raised: %r", receiver, response)


class StandardTaskRunner(JobTask):
    """JobTask with the standard's signals around each attempt and errors named by class path
    (``module.Class: message``: the errors of ``TaskResult`` hold the exception class path)."""

    abstract = True

    def error_message(self, exc: BaseException) -> str:
        return f"{exception_name(type(exc))}: {exc}"

    def __call__(self, *args, **kwargs):
        job_id = self.request.id
        if job_id is None or getattr(self.request, "called_directly", False):
            return super().__call__(*args, **kwargs)
        path = kwargs.get("task", args[0] if args else None)
        try:
            standard_task(path)
        except TaskRefused as exc:
            # Checked before the job starts: a refused message never runs, and its job fails.
            error = f"Refused: {exc}"
            if job_fail_unstarted(job_id=job_id, error=error, attempts=getattr(self.request, "taskhub_attempts", None)):
                logger.error("Job %s: %s", job_id, error)
            raise Ignore() from None
        self.request.standard_task = None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            task = self.request.standard_task
            self.request.standard_task = None
            if task is not None:
                _send(task_finished, _backend(task), job_id)


def _refuse_unknown(owner, arguments: dict[str, Any]) -> None:
    """At creation (API, admin, commands, the backend): the job must name a task of this backend."""
    try:
        standard_task(arguments.get("task"))
    except TaskRefused as exc:
        raise InvalidInput(f"kwargs.task: {exc}", code="invalid_arguments", fields={"kwargs": [str(exc)]}) from exc


@job_task(
    name=RUNNER_TASK,
    aliases=("django_task",),
    base=StandardTaskRunner,
    authorize=_refuse_unknown,
)
def run_standard_task(
    self,
    task: str,
    args: list | None = None,
    kwargs: dict | None = None,
    priority: int = 0,
    queue_name: str = "default",
    run_after: str | None = None,
) -> Any:
    """Run a function decorated with Django's @task (django.tasks) for taskhub's backend, by its
    import path, with its args and kwargs. priority, queue_name and run_after are as it was
    enqueued (get_result reads them back). Enqueue such tasks with `task.enqueue(...)`."""
    standard = standard_task(task)
    backend = _backend(standard)
    job_id = self.request.id
    self.request.standard_task = standard
    _send(task_started, backend, job_id)
    args, kwargs = list(args or []), dict(kwargs or {})
    if standard.takes_context:
        context = TaskhubTaskContext(task_result=backend.get_result(job_id), run=self.request.job_run)
        return standard.call(context, *args, **kwargs)
    return standard.call(*args, **kwargs)
