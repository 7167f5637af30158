"""Failures before a job's task body runs, caught where Celery reports them.

``JobTask.__call__`` starts a job; anything that goes wrong before it is reached (Celery binding
arguments the function cannot take, a task name this worker does not know) would leave the row
pending forever. These handlers fail it with the reason instead.
"""

import logging

from celery.signals import task_failure, task_unknown

from ..services.execution import job_fail_unstarted
from .base import JobTask

logger = logging.getLogger(__name__)


@task_failure.connect
def fail_job_that_never_started(sender=None, task_id=None, exception=None, **extra) -> None:
    if not isinstance(sender, JobTask) or not task_id:
        return
    attempts = getattr(sender.request, "taskhub_attempts", None)
    # Only a row still pending was never started; a started job records its own failure.
    error = f"{type(exception).__name__}: {exception}"
    if job_fail_unstarted(job_id=task_id, error=error, error_type=type(exception).__name__, attempts=attempts):
        logger.error("Job %s failed before its task ran: %s", task_id, exception)


@task_unknown.connect
def fail_job_of_an_unknown_task(sender=None, name=None, id=None, message=None, **extra) -> None:
    if not id:
        return
    headers = getattr(message, "headers", None) or {}
    error = f"This worker has no task named {name!r} (a crafted message, or a worker of another version)."
    if job_fail_unstarted(job_id=id, error=error, error_type="NotRegistered", attempts=headers.get("taskhub_attempts")):
        logger.error("Job %s failed: %s", id, error)
