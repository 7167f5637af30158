"""Django's standard task API (DEP 14), imported in this one place.

On Django 5.2 it comes from the ``django-tasks`` backport (requirements/base.txt); Django 6 ships
it as ``django.tasks`` with the same modules and names (only two exceptions were renamed, handled
below), and taskhub's backend is then a backend of the built-in one: chosen here by Django's
version, no setting (the Django 6 leg, requirements/django60.txt, installs no backport).
"""

from importlib import import_module

import django

PACKAGE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"

_api = import_module(PACKAGE)
_base = import_module(f"{PACKAGE}.base")
_backends = import_module(f"{PACKAGE}.backends.base")
_exceptions = import_module(f"{PACKAGE}.exceptions")
_signals = import_module(f"{PACKAGE}.signals")
# The standard's own normalisation of arguments and return values into JSON types (tuples to lists,
# bytes decoded, TypeError "Unsupported type: ..." for anything else): Django 6 moved it to django.utils.json.
_json = import_module("django.utils.json" if PACKAGE == "django.tasks" else f"{PACKAGE}.utils")

BaseTaskBackend = _backends.BaseTaskBackend
Task = _base.Task
TaskContext = _base.TaskContext
TaskError = _base.TaskError
TaskResult = _base.TaskResult
TaskResultStatus = _base.TaskResultStatus
task = _api.task
task_backends = _api.task_backends
DEFAULT_TASK_QUEUE_NAME = _api.DEFAULT_TASK_QUEUE_NAME
normalize_json = _json.normalize_json

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
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
