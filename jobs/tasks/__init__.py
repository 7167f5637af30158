"""Celery tasks. Importing this package registers every built-in task in the catalog."""

from . import common_tasks, high_priority_tasks, liveness, maintenance_tasks, model_tasks, signals  # noqa: F401
