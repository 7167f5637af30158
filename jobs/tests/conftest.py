"""Fixtures for the job engine tests that need no worker."""

import pytest
from celery.signals import after_task_publish


@pytest.fixture
def published():
    """Messages Celery actually handed to the broker during the test, in order.

    Each is ``{"id", "task", "routing_key", "args", "kwargs"}``. Observed through Celery's own
    ``after_task_publish`` signal, so nothing of ours is replaced.
    """
    messages: list[dict] = []

    def record(sender=None, headers=None, body=None, routing_key=None, **extra):
        args, kwargs, _ = body
        messages.append(
            {
                "id": headers["id"],
                "task": headers["task"],
                "routing_key": routing_key,
                "args": args,
                "kwargs": kwargs,
            }
        )

    after_task_publish.connect(record, weak=False)
    yield messages
    after_task_publish.disconnect(record)
