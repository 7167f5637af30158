"""Django's standard task API (DEP 14), imported in this one place.

On Django 5.2 it comes from the ``django-tasks`` backport; Django 6 ships it as ``django.tasks``
with the same modules and names (only two exceptions were renamed, handled below). Moving to
Django 6 is the one-line change of ``PACKAGE``.
"""

from importlib import import_module

PACKAGE = "django_tasks"  # Django 6: "django.tasks"

_api = import_module(PACKAGE)
_base = import_module(f"{PACKAGE}.base")
_backends = import_module(f"{PACKAGE}.backends.base")
_exceptions = import_module(f"{PACKAGE}.exceptions")
_signals = import_module(f"{PACKAGE}.signals")

BaseTaskBackend = _backends.BaseTaskBackend
Task = _base.Task
TaskContext = _base.TaskContext
TaskError = _base.TaskError
TaskResult = _base.TaskResult
TaskResultStatus = _base.TaskResultStatus
task = _api.task
task_backends = _api.task_backends
DEFAULT_TASK_QUEUE_NAME = _api.DEFAULT_TASK_QUEUE_NAME

# The backport's names; Django 6 dropped the "Error" suffix of these two.
InvalidTask = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
InvalidTaskBackend = getattr(_exceptions, "InvalidTaskBackend", None) or _exceptions.InvalidTaskBackendError
TaskResultDoesNotExist = _exceptions.TaskResultDoesNotExist

task_enqueued = _signals.task_enqueued
task_started = _signals.task_started
task_finished = _signals.task_finished

__all__ = [
    "DEFAULT_TASK_QUEUE_NAME",
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
