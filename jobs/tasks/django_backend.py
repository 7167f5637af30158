"""taskhub as a backend of Django's standard task API (``django.tasks``, DEP 14).

``TASKS = {"default": {"BACKEND": "jobs.tasks.django_backend.TaskhubBackend"}}`` makes every
``@task`` function run as a tracked job: ``enqueue`` goes through ``job_create`` (the API's
service: catalog, limits, the transaction, the send after commit), one catalog task
(``jobs.tasks.standard_tasks.run_standard_task``) runs the function by its import path on a
worker, and ``get_result`` reads the job row and its timeline. The jobs show in the API and the
admin like any other (named by the function's import path, ``task_type`` ``django.tasks``), and
can be cancelled and retried there.

Priority (-100 to 100) onto taskhub's priorities, on the ``default`` queue: 50 and above urgent,
1 to 49 high, 0 (the standard's default) normal, below 0 low. ``queue_name`` may also name one of
taskhub's other queues: ``high_priority`` (urgent from 50, else high) or ``low_priority`` (low);
the backend's ``QUEUES`` lists the names its tasks may use (taskhub's queues only).
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import dataclasses
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.utils.dateparse import parse_datetime

from accounts.models import User
from accounts.services import user_service_account

from ..models import TERMINAL_STATUSES, Job, JobEventKind, JobPriority, JobStatus
from ..redaction import strip_server_paths
from ..selectors import job_standard_history
from ..services.creation import job_create
from ..unique import unique_rule
from .standard_api import (
    DEFAULT_TASK_QUEUE_NAME,
    BaseTaskBackend,
    InvalidTask,
    InvalidTaskBackend,
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_backends,
    task_enqueued,
)

RUNNER_TASK = "jobs.tasks.standard_tasks.run_standard_task"
TASK_TYPE = "django.tasks"
TASKHUB_QUEUES = ("default", "high_priority", "low_priority")

STATUSES = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.REVOKED: TaskResultStatus.FAILED,  # with a JobCancelled error; job_status says "revoked"
    JobStatus.EXPIRED: TaskResultStatus.FAILED,  # with a JobExpired error; job_status says "expired"
}


class TaskRefused(Exception):
    """An import path that does not name a function decorated as a task of this backend."""


class JobCancelled(Exception):
    """The error of a standard task whose job was cancelled (revoked) in taskhub."""


class JobExpired(Exception):
    """The error of a standard task whose job was not started by its deadline (expires_at) in taskhub."""


class JobInterrupted(Exception):
    """The error of an attempt that ended without an exception of the task's own: its worker was
    lost, it ran out of time, or it could not even start."""


def taskhub_priority(priority: int, queue_name: str = DEFAULT_TASK_QUEUE_NAME) -> str:
    """The job priority for a standard priority (-100 to 100) on a queue (see the module's docstring)."""
    if queue_name == "low_priority" or (queue_name == "default" and priority < 0):
        return JobPriority.LOW
    if priority >= 50:
        return JobPriority.URGENT
    if priority > 0 or queue_name == "high_priority":
        return JobPriority.HIGH
    return JobPriority.NORMAL


_owner: contextvars.ContextVar[User | None] = contextvars.ContextVar("taskhub_tasks_owner", default=None)


@contextlib.contextmanager
def owned_by(user: User) -> Iterator[None]:
    """``with owned_by(request.user): report.enqueue(...)``: the jobs enqueued inside belong to
    ``user`` (they see them in the API, and their quotas apply) instead of the service account."""
    token = _owner.set(user)
    try:
        yield
    finally:
        _owner.reset(token)


_unique: contextvars.ContextVar[dict | None] = contextvars.ContextVar("taskhub_tasks_unique", default=None)


@contextlib.contextmanager
def unique(rule: dict[str, Any]) -> Iterator[None]:
    """``with unique({"key": "sync-42", "policy": "debounce", "period": 2}): sync.enqueue(...)``: the
    jobs enqueued inside carry this uniqueness rule (README "Unique jobs"); a duplicate's
    ``enqueue`` returns the result of the job holding the key. Without ``key`` the key is derived
    from the function's path and its args and kwargs (or the kwargs named in ``kwargs``). A bad rule
    raises InvalidInput naming the field at the ``enqueue``."""
    token = _unique.set(rule)
    try:
        yield
    finally:
        _unique.reset(token)


_concurrency: contextvars.ContextVar[dict | None] = contextvars.ContextVar("taskhub_tasks_concurrency", default=None)


@contextlib.contextmanager
def concurrency_key(key: str, limit: int = 1) -> Iterator[None]:
    """``with concurrency_key(f"tenant-{tenant.id}", limit=1): sync.enqueue(...)``: the jobs enqueued
    inside carry this concurrency key (README "Concurrency keys"): at most ``limit`` of them run at
    once. A bad key or limit is a ``taskhub.errors.InvalidInput`` at ``enqueue``, naming the field."""
    token = _concurrency.set({"key": key, "limit": limit})
    try:
        yield
    finally:
        _concurrency.reset(token)


logger = logging.getLogger(__name__)

_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
# A module with a segment named so is never product code: tests and their helpers, migrations, commands.
_NOT_PRODUCT = re.compile(r"tests?|testing|conftest|migrations|management|test_\w*|\w*_tests?")


def _in_installed_app(module: str) -> bool:
    return any(module == app.name or module.startswith(app.name + ".") for app in apps.get_app_configs())


def _product_code(module: str) -> bool:
    """No test, migration or command module, unless the settings name it (the suite's own tasks:
    TASKS_ALLOWED_TEST_MODULES, empty by default): by name, never by folder."""
    if module in settings.TASKS_ALLOWED_TEST_MODULES:
        return True
    return not any(_NOT_PRODUCT.fullmatch(segment) for segment in module.split("."))


def standard_task(path: Any) -> Task:
    """The task a job names by import path: a module-level function decorated with ``@task`` for a
    taskhub backend, in a product module of an installed app. Anything else raises TaskRefused and
    is never called; a module outside the installed apps, or of tests, migrations or management
    commands, is not even imported. An import error is logged, never told (it names the server's code)."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise TaskRefused(f"{path!r} is not an import path.")
    module_name, _, name = path.rpartition(".")
    if not _in_installed_app(module_name):
        raise TaskRefused(f"{path} is not in an installed app: only functions decorated with @task run.")
    if not _product_code(module_name):
        raise TaskRefused(
            f"{path} is not product code: modules named tests, test_*, conftest, migrations or management never run."
        )
    try:
        module = sys.modules.get(module_name) or import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever its import raises: refused, the detail logged
        logger.warning("Task path %s cannot be imported: %s: %s", path, type(exc).__name__, exc)
        raise TaskRefused(f"unknown task path {path}.") from None
    found = vars(module).get(name)  # no module __getattr__: nothing runs beyond the import
    if not isinstance(found, Task) or found.module_path != path:
        raise TaskRefused(f"{path} is not a function decorated with @task.")
    try:
        backend = task_backends[found.backend]
    except InvalidTaskBackend as exc:
        raise TaskRefused(f"{path} is a task of backend {found.backend!r}, which is not configured.") from exc
    if not isinstance(backend, TaskhubBackend):
        raise TaskRefused(f"{path} is a task of backend {found.backend!r}, not of taskhub's.")
    return found


@dataclass(frozen=True, kw_only=True)
class TaskhubTaskResult(TaskResult):
    """A standard TaskResult with what the job row says beyond the standard: taskhub's own status
    (``revoked`` and ``expired`` read as FAILED in the standard), progress and its message."""

    job_status: str = ""
    progress: int = 0
    progress_message: str = ""

    def refresh(self) -> None:
        """Reload everything from one read of the row (the standard's fields and taskhub's agree)."""
        fresh = self.task.get_backend().get_result(self.id)
        for field in dataclasses.fields(fresh):
            object.__setattr__(self, field.name, getattr(fresh, field.name))

    async def arefresh(self) -> None:
        await sync_to_async(self.refresh)()


@dataclass(frozen=True, kw_only=True)
class TaskhubTaskContext(TaskContext):
    """The context of a ``takes_context=True`` task: ``attempt`` (from 1), and ``progress``."""

    run: Any = None  # the attempt's JobRun (jobs.tasks.run); None outside a worker

    def progress(self, percent: float, message: str | None = None, **meta: Any) -> None:
        """Report progress (0-100) with an optional message, as catalog tasks do: the API, the
        admin and the streams show it. After a cancel the task stops here (JobCancelled)."""
        if self.run is not None:
            self.run.progress(percent, message, **meta)

    async def aprogress(self, percent: float, message: str | None = None, **meta: Any) -> None:
        await sync_to_async(self.progress)(percent, message, **meta)


_CLASS_PATH = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


def exception_name(exc_type: type[BaseException]) -> str:
    """How the runner names an exception in a job's error: ``module.Class``, plain for builtins
    (``ValueError``, as every other job's error reads)."""
    if exc_type.__module__ == "builtins":
        return exc_type.__qualname__
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def _exception_path(message: str) -> str:
    """The class path a job error starts with; other endings (worker lost, time limits, refused)
    are JobInterrupted."""
    match = _CLASS_PATH.match(message)
    name = match.group(1) if match else ""
    if "." in name:
        return name
    if isinstance(getattr(builtins, name, None), type) and issubclass(getattr(builtins, name), BaseException):
        return f"builtins.{name}"
    return f"{JobInterrupted.__module__}.{JobInterrupted.__qualname__}"


def _error(message: str, traceback: str, *, redact: bool) -> TaskError:
    """A TaskError from a job error, which the runner writes as ``module.Class: message``."""
    path = _exception_path(message)
    text = traceback or message
    return TaskError(exception_class_path=path, traceback=strip_server_paths(text) if redact else text)


class TaskhubBackend(BaseTaskBackend):
    """Runs ``@task`` functions as taskhub jobs. OPTIONS: ``OWNER`` (the name given to the service
    account that owns jobs enqueued outside ``owned_by``; the account is found by its flag
    ``is_service_account``, never by this name, which nobody may register), ``MAX_RETRIES``
    (automatic retries of a failed attempt, with the catalog's backoff; default 0)."""

    supports_defer = True  # run_after -> the job's run_at
    supports_async_task = True  # coroutine functions run through asgiref's async_to_sync
    supports_get_result = True  # from the job row, in any process
    supports_priority = True  # onto urgent/high/normal/low, whose queues workers poll in order

    def __init__(self, alias: str, params: dict) -> None:
        params = {"QUEUES": list(TASKHUB_QUEUES), **params}
        super().__init__(alias, params)
        self.queues = set(self.queues) or set(TASKHUB_QUEUES)  # none listed: taskhub's, never any name
        unknown = sorted(set(self.queues) - set(TASKHUB_QUEUES))
        if unknown:
            raise InvalidTaskBackend(
                f"TASKS[{alias!r}]['QUEUES'] may name taskhub's queues only ({', '.join(TASKHUB_QUEUES)}), "
                f"not {', '.join(unknown)}."
            )
        self.owner_username = self.options.get("OWNER", "django-tasks")
        self.max_retries = int(self.options.get("MAX_RETRIES", 0))

    def enqueue(self, task: Task, args, kwargs) -> TaskhubTaskResult:
        self.validate_task(task)
        try:
            found = standard_task(task.module_path)
        except TaskRefused as exc:
            raise InvalidTask(str(exc)) from exc
        if found.func is not task.func:
            raise InvalidTask(f"{task.module_path} does not name this task's function.")
        # What JSON cannot carry: the standard's TypeError ("Unsupported type: ..."), as its TaskResult says.
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        owner = _owner.get() or user_service_account(username=self.owner_username)  # found by its flag
        rule = unique_rule(_unique.get())
        if rule is not None:  # the key from the function and its own arguments, not the runner's kwargs
            rule = dataclasses.replace(rule, key=rule.key_for(task.module_path, list(args), dict(kwargs)), kwargs=None)
        job = job_create(
            owner=owner,
            celery_task_name=RUNNER_TASK,
            name=task.module_path[:200],
            task_type=TASK_TYPE,
            kwargs={
                "task": task.module_path,
                "args": list(args),
                "kwargs": dict(kwargs),
                "priority": task.priority,
                "queue_name": task.queue_name,
                "run_after": task.run_after.isoformat() if task.run_after else None,
            },
            priority=taskhub_priority(task.priority, task.queue_name),
            max_retries=self.max_retries,
            run_at=task.run_after,
            unique=rule,
            by_application=True,  # the application's code picks the priority, urgent included
            concurrency=_concurrency.get(),
        )
        result = self._result(job, task=task, workers=[], starts=[], errors=[])
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskhubTaskResult:
        try:
            job_id = uuid.UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        job = Job.objects.select_related("owner").filter(id=job_id, celery_task_name=RUNNER_TASK).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = self._task_of(job)
        except TaskRefused as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from exc
        redact = not job.owner.is_staff  # as the API shows it to the job's owner
        starts, errors, cancelled_by = [], [], ""
        for event in job_standard_history(job=job):
            if event.kind == JobEventKind.STARTED:
                starts.append((event.at, event.actor_label.removeprefix("worker ")))
            elif event.kind == JobEventKind.CANCEL_REQUESTED:
                cancelled_by = event.actor_label  # of a running job, which the worker then revokes
            elif event.kind == JobEventKind.REVOKED:
                reason = f"Job cancelled in taskhub by {cancelled_by or event.actor_label}: {event.message}"
                errors.append(TaskError(exception_class_path=f"{__name__}.JobCancelled", traceback=reason))
                cancelled_by = ""
            elif event.kind == JobEventKind.EXPIRED:
                errors.append(TaskError(exception_class_path=f"{__name__}.JobExpired", traceback=event.message))
            else:  # failed, retry_scheduled, requeued: one attempt's failure
                message = event.data.get("error") or event.message.removeprefix("Could not start: ") or job.error
                errors.append(_error(message, event.data.get("traceback", ""), redact=redact))
        return self._result(job, task=task, workers=[w for _, w in starts], starts=starts, errors=errors)

    def _task_of(self, job: Job) -> Task:
        """The Task as it was enqueued: the module's task with the job's priority, queue and run_after."""
        found = standard_task(job.kwargs.get("task"))
        run_after = job.kwargs.get("run_after")
        try:
            return found.using(
                priority=job.kwargs.get("priority"),
                queue_name=job.kwargs.get("queue_name"),
                run_after=parse_datetime(run_after) if isinstance(run_after, str) else None,
                backend=self.alias,
            )
        except (InvalidTask, TypeError, ValueError):
            return found  # settings changed since: the module's own defaults

    def _result(self, job: Job, *, task: Task, workers: list, starts: list, errors: list) -> TaskhubTaskResult:
        finished = job.status in TERMINAL_STATUSES
        meta = job.progress_meta if isinstance(job.progress_meta, dict) else {}
        arguments = job.kwargs if isinstance(job.kwargs, dict) else {}
        result = TaskhubTaskResult(
            task=task,
            id=str(job.id),
            status=STATUSES[job.status],
            enqueued_at=job.created_at,
            started_at=starts[0][0] if starts else None,
            last_attempted_at=starts[-1][0] if starts else None,
            finished_at=job.finished_at if finished else None,
            args=arguments.get("args") or [],
            kwargs=arguments.get("kwargs") or {},
            backend=self.alias,
            errors=errors,
            worker_ids=workers,
            job_status=job.status,
            progress=job.progress,
            progress_message=str(meta.get("message", "")),
        )
        # Always set: a subclass without slots does not inherit the slotted default of this field.
        object.__setattr__(result, "_return_value", job.result if job.status == JobStatus.SUCCEEDED else None)
        return result
