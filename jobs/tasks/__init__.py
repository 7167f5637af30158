"""Celery tasks. Importing this package registers every built-in task in the catalog."""

from . import (  # noqa: F401
    common_tasks,
    high_priority_tasks,
    liveness,
    maintenance_tasks,
    model_tasks,
    signals,
    standard_tasks,
)
