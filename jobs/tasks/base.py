"""The Celery task base every catalog task runs on.

It keeps the job row true while the task runs: marks it running (skipping jobs that are no
longer pending, e.g. cancelled while queued), keeps a heartbeat, writes throttled progress,
stores the result or the error with its traceback, schedules automatic retries, and stops the
task when a cancel was requested: cooperatively at the next ``progress`` call, or by
terminating the worker process after the grace period; and at its hard time limit, in whichever
pool runs it (``jobs.tasks.limits``). The run itself, with its heartbeat, progress and limits,
is ``jobs.tasks.run.JobRun``.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback as traceback_module
from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded

from taskhub.errors import Conflict, InvalidInput, NotFound

from ..catalog import catalog
from ..selectors import job_parent_results
from ..services.execution import (
    job_fail,
    job_revoke,
    job_start,
    job_succeed,
)
from .run import JobCancelled, JobLost, JobRun, waiting_out_outages

logger = logging.getLogger(__name__)


class JobTask(Task):
    """Base class of catalog tasks (see :func:`jobs.tasks.registry.job_task`)."""

    abstract = True
    # The job row holds the outcome (status, result, error, traceback): no second copy in Celery's
    # result backend, which cost two result rows per job with django-db.
    # https://docs.celeryq.dev/en/stable/userguide/tasks.html#Task.ignore_result
    ignore_result = True
    store_errors_even_if_ignored = False

    def __call__(self, *args, **kwargs):
        job_id = self.request.id
        if job_id is None or getattr(self.request, "called_directly", False):
            return self.run(*args, **kwargs)  # plain function call, e.g. in a unit test: no job row
        worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
        attempts = getattr(self.request, "taskhub_attempts", None)
        creator_lock = getattr(self.request, "taskhub_creator_lock", None)
        job = waiting_out_outages(
            lambda: job_start(job_id=job_id, worker=worker, attempts=attempts, creator_lock=creator_lock),
            job_id=job_id,
            what="start",
        )
        if job is None:
            logger.info(
                "Job %s is not pending, not due yet or of another attempt (a cancel, a duplicate): skipped.", job_id
            )
            raise Ignore()
        if job.unique_key:
            # A replace or debounce may have changed the arguments after this message was sent.
            args, kwargs = job.args, job.kwargs
        run = JobRun(job=job, entry=catalog.get(self.name), worker=worker)
        self.request.job_run = run
        run.start()
        try:
            try:
                result = self.run(*args, **kwargs)
            finally:
                run.stop()
        except JobCancelled:
            self._record(job_revoke, run, reason="Stopped at a progress check after the cancel request.")
            raise Ignore() from None
        except JobLost:
            logger.warning("Job %s attempt %s lost its row while running; result dropped.", job_id, run.attempts + 1)
            raise Ignore() from None
        except Exception as exc:
            run.write_held()
            time_limit = isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded)  # never retried
            if isinstance(exc, SoftTimeLimitExceeded):
                error = f"Soft time limit exceeded ({self.request.timelimit[1] if self.request.timelimit else '?'}s)"
            elif time_limit:  # raised by jobs.tasks.limits, whose watchdog could not record it
                error = f"Hard time limit ({run.entry.time_limit} s) exceeded."
            else:
                error = self.error_message(exc)
            retried = self._record(
                job_fail,
                run,
                error=error,
                error_type=type(exc).__name__,
                traceback="".join(traceback_module.format_exception(exc)),
                auto_retry=not time_limit and isinstance(exc, run.entry.retry.retry_on),
            )
            if retried:
                raise Ignore() from None
            raise
        else:
            held = run.take_held()  # written with the outcome, not on its own
            try:
                self._record(job_succeed, run, result=result, progress_meta=held[1] if held else None)
            except InvalidInput as exc:
                self._record(job_fail, run, error=exc.message, error_type=type(exc).__name__, auto_retry=False)
                raise
            return result
        finally:
            self.request.job_run = None
            if not run.stopped:  # a time limit raised as the run was ending, before its stop took effect
                run.stop()

    def error_message(self, exc: BaseException) -> str:
        """The job's error for an exception the task raised (its traceback is stored beside it)."""
        return f"{type(exc).__name__}: {exc}"

    def _record(self, service, run: JobRun, **kwargs):
        """Record this attempt's outcome; if the row moved on meanwhile (revoked by the watchdog,
        re-queued by the sweeper, deleted), say so and carry on."""
        try:
            return waiting_out_outages(
                lambda: service(job_id=run.job_id, attempts=run.attempts, worker=run.worker, **kwargs),
                job_id=run.job_id,
                what=service.__name__.removeprefix("job_"),
            )
        except (Conflict, NotFound) as exc:
            logger.warning("Job %s: outcome not recorded: %s", run.job_id, exc.message)
            return False

    @property
    def attempt(self) -> int:
        """This run's attempt number, counted from 1 (1 outside a job, e.g. a plain function call)."""
        run: JobRun | None = getattr(self.request, "job_run", None)
        return run.attempts + 1 if run else 1

    @property
    def parent_results(self) -> dict[str, Any]:
        """A workflow step's parents' results by step id, read from their rows at the first access
        ({} outside a workflow or a job): they are not pushed into the step's arguments."""
        run: JobRun | None = getattr(self.request, "job_run", None)
        if run is None:
            return {}
        if run.parent_results is None:
            run.parent_results = job_parent_results(job_id=run.job_id)
        return run.parent_results

    def progress(self, percent: float, message: str | None = None, **meta: Any) -> None:
        """Report progress (0-100) with an optional message; stops the task if it was cancelled."""
        run: JobRun | None = getattr(self.request, "job_run", None)
        if run is None:
            return  # called outside a job (plain function call)
        run.progress(percent, message, **meta)
