"""``@job_task``: how a function becomes a task a job may run.

It adds the function to the catalog and makes it a Celery task on :class:`JobTask`. It lives
here, beside the task base, rather than in the catalog: the task base imports the catalog and
the services, so the catalog must not import the task base.
"""

from collections.abc import Callable
from typing import Any

from celery import Task, shared_task

from ..catalog import CatalogEntry, RetryPolicy, catalog
from ..models import JobPriority
from .base import JobTask


def job_task(
    *,
    name: str,
    aliases: tuple[str, ...] = (),
    priority: str = JobPriority.NORMAL,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    max_retries: int = 0,
    retry_backoff: float = 2.0,
    retry_backoff_max: float = 600.0,
    retry_jitter: bool = True,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    cancellable: bool = True,
    staff_only: bool = False,
    schema: dict | None = None,
    authorize: Callable[[Any, dict[str, Any]], None] | None = None,
    budget: Callable[[Any, list[dict[str, Any]]], None] | None = None,
    unique: dict[str, Any] | None = None,
    concurrency: dict[str, Any] | None = None,
    base: type[JobTask] = JobTask,
) -> Callable[[Callable], Task]:
    """Register ``function(self, ...)`` as a catalog entry and a Celery task on JobTask.

    The function receives the task as ``self`` and reports with ``self.progress(percent,
    message=None, **meta)``; a cancel stops it at its next progress call. A task that never
    calls ``progress`` must say ``cancellable=False``: a cancel then terminates it at the next
    heartbeat (no grace period). ``schema`` declares the parameters' JSON Schema instead of
    deriving it from the signature; either way it is what a job's args/kwargs are checked
    against. ``authorize(owner, arguments)`` may refuse an owner or arguments beyond the schema
    (raise an ApplicationError); it runs when a job is created. ``budget(owner, [arguments])``
    may refuse what a request's jobs of this task use together (raise). ``unique``: its jobs'
    uniqueness rule when a request gives none (``{"policy": "reject", "kwargs": ["user_id"]}``, README
    "Unique jobs"), checked now. ``concurrency``: ``{"key": "tenant-{tenant_id}", "limit": 1}``, the
    concurrency key of every job of the task whose request names none; ``{name}`` is the job's argument
    of that name (README "Concurrency keys"). ``base``: a subclass of JobTask for a task that needs more
    around each run (jobs.tasks.standard_tasks).
    """

    def decorate(function: Callable) -> Task:
        entry = CatalogEntry.from_function(
            function,
            name=name,
            aliases=aliases,
            priority=priority,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            retry=RetryPolicy(max_retries, retry_backoff, retry_backoff_max, retry_jitter, retry_on),
            cancellable=cancellable,
            staff_only=staff_only,
            schema=schema,
            authorize=authorize,
            budget=budget,
            unique=unique,
            concurrency=concurrency,
        )
        catalog.add(entry)
        return shared_task(bind=True, base=base, name=name, typing=False)(function)

    return decorate
