"""The Celery app, configured from Django settings (the `CELERY_` namespace)."""

import os
import time

from celery import Celery, signals
from django.conf import settings
from django.db import close_old_connections, connections
from kombu import Exchange, Queue
from kombu.transport import TRANSPORT_ALIASES

from taskhub.runtime import freeze_loaded_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

# redis:// URLs (the broker's, in every process) go through kombu's Redis transport with one Redis client
# per channel instead of one per command (taskhub/broker.py). By the URL's scheme, not the
# broker_transport setting: that one would apply to any broker URL, an amqp:// given with -b too.
TRANSPORT_ALIASES["redis"] = "taskhub.broker:Transport"

app = Celery("taskhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in settings.JOB_QUEUES]

if settings.CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in ("queue", "control"):
        (settings.BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)

app.autodiscover_tasks()


# A pool process keeps a connection borrowed from the pool for this long, across its tasks.
POOLED_CONNECTION_KEPT_SECONDS = 60.0


@signals.task_prerun.connect
def _recycle_database_connections(task=None, **kwargs) -> None:
    """Before each task, what Django does before each request: replace a connection that is past
    CONN_MAX_AGE or broken (checked on reuse with CONN_HEALTH_CHECKS), keep the others. Celery's own
    fixup would close them all around every task; CELERY_DB_REUSE_MAX turns that off (settings).

    With the connection pool (CONN_MAX_AGE = 0) that rule gave the connection back to the pool before
    every task and borrowed it again at the first query, with the pool's check: 9 % of a pool
    process's CPU on short jobs. A pool process runs one task at a time, so it keeps the connection
    it borrowed for POOLED_CONNECTION_KEPT_SECONDS (health-checked on reuse, replaced when broken)."""
    if getattr(task.request, "is_eager", False):
        return
    for connection in connections.all(initialized_only=True):
        borrowed = connection.connection
        pooled = getattr(connection, "pool", None) is not None  # only PostgreSQL's wrapper has a pool
        if borrowed is not None and pooled and getattr(connection, "_kept", None) is not borrowed:
            connection._kept = borrowed
            connection.close_at = time.monotonic() + POOLED_CONNECTION_KEPT_SECONDS
    close_old_connections()


@signals.worker_process_init.connect
@signals.worker_ready.connect
def _freeze_loaded_objects(**kwargs) -> None:
    """A pool process has started, or the worker's main process (the consumer) is ready: what is
    loaded now lives as long as the process; keep it out of garbage collections (taskhub/runtime.py)."""
    freeze_loaded_objects()
