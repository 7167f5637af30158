"""The Celery app, configured from Django settings (the `CELERY_` namespace)."""

import os

from celery import Celery
from django.conf import settings
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

app = Celery("taskhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in settings.JOB_QUEUES]

if settings.CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in ("queue", "control"):
        (settings.BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)

app.autodiscover_tasks()
