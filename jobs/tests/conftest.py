"""Fixtures for the job engine tests that need no worker."""

from contextlib import contextmanager

import pytest
from celery.signals import after_task_publish

from jobs.models import Job, JobEvent
from jobs.services.gates import forget_limits


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


@pytest.fixture
def nothing_written(published, django_capture_on_commit_callbacks):
    """``with nothing_written(): ...``: no job, no event, no after-commit send, no message."""

    @contextmanager
    def check():
        before = (Job.objects.count(), JobEvent.objects.count())
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            yield
        assert callbacks == []
        assert (Job.objects.count(), JobEvent.objects.count()) == before
        assert published == []

    return check


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate limits are cached per process for a second: a test never sees another test's."""
    forget_limits()
    yield
    forget_limits()
