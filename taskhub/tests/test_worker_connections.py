"""A worker's pool process keeps the database connection it borrowed across tasks (for
POOLED_CONNECTION_KEPT_SECONDS), and gives it back once it is older."""

import time
from types import SimpleNamespace

import pytest
from celery import signals
from django.db import connection

from taskhub import celery as taskhub_celery

pytestmark = pytest.mark.django_db(transaction=True)  # the connection is closed and reopened


def before_a_task() -> None:
    """What Celery sends before each task a worker runs."""
    task = _Task()
    signals.task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})


class _Task:
    """As much of a task as the handlers read: a request that is not eager."""

    request = SimpleNamespace(is_eager=False)


def pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_pooled_connection_is_kept_across_tasks():
    assert connection.pool is not None  # the settings' default on PostgreSQL
    first = pid()
    borrowed = connection.connection
    for _ in range(3):
        before_a_task()
        assert connection.connection is borrowed  # not given back to the pool and borrowed again
        assert pid() == first
    assert connection.close_at > time.monotonic() + taskhub_celery.POOLED_CONNECTION_KEPT_SECONDS - 5


def test_an_old_connection_goes_back_to_the_pool():
    pid()
    before_a_task()
    connection.close_at = time.monotonic() - 1  # kept long enough
    before_a_task()
    assert connection.connection is None  # returned; the next query borrows one
    assert pid()
