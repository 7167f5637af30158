"""Celery tasks. Importing this package registers every built-in task in the catalog."""

from . import common_tasks, high_priority_tasks, maintenance_tasks, model_tasks, signals, standard_tasks  # noqa: F401
