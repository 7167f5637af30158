"""The Celery app, configured from Django settings (the `CELERY_` namespace)."""

import os

from celery import Celery, signals
from django.conf import settings
from django.db import close_old_connections
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

app = Celery("taskhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in settings.JOB_QUEUES]

if settings.CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in ("queue", "control"):
        (settings.BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)

app.autodiscover_tasks()


@signals.task_prerun.connect
def _recycle_database_connections(task=None, **kwargs) -> None:
    """Before each task, what Django does before each request: replace a connection that is past
    CONN_MAX_AGE or broken (checked on reuse with CONN_HEALTH_CHECKS), keep the others. Celery's own
    fixup would close them all around every task; CELERY_DB_REUSE_MAX turns that off (settings)."""
    if not getattr(task.request, "is_eager", False):
        close_old_connections()
