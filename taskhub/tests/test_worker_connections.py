"""A worker's pool process keeps the database connection it borrowed across tasks (for
POOLED_CONNECTION_KEPT_SECONDS), and still gives back one that is too old or broken."""

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


def test_a_connection_broken_between_tasks_is_replaced_before_the_next_tasks_first_query():
    broken = pid()
    before_a_task()
    with _Other() as other:  # another session ends this one, as a server restart would
        other.execute("SELECT pg_terminate_backend(%s)", [broken])
        # pg_terminate_backend only signals it: wait until it has gone, as a restart is over
        # before the next task (a query racing the exit is the task base's to retry).
        deadline = time.monotonic() + 10
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [broken]).fetchone():
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.05)
    before_a_task()
    assert pid() != broken  # the health check on reuse (CONN_HEALTH_CHECKS) found it dead: no error


class _Other:
    """A second, independent connection (psycopg directly)."""

    def __enter__(self):
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("prepare_threshold", None)
        self.conn = psycopg.connect(**params, autocommit=True)
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()
