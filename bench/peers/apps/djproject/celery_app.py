"""Celery + django-celery-results: the Celery app of a Django project, as Celery's Django guide writes it."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.apps.djproject.settings")

import django
from celery import Celery

app = Celery("peers")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="peers.noop")
def noop(index: int = 0) -> int:
    return index


def prepare() -> None:
    django.setup()


def enqueue(count: int) -> None:
    """Publish ``count`` no-op tasks (Celery has no bulk publish: one ``apply_async`` each)."""
    for index in range(count):
        noop.apply_async(args=[index])
