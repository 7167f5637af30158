"""A server-side cursor read outside a transaction is declared WITH HOLD, and behind PgBouncer in
transaction mode its next FETCH may reach another server connection, which has no such cursor
(docs/DEPLOYMENT.md). Every chunked read (``.iterator()``) of the application runs in a transaction."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.selectors import notification_recipients_since
from jobs.tests.factories import make

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_notification_budgets_chunked_read_runs_inside_a_transaction(user):
    make("succeeded", owner=user, celery_task_name="send_notification", kwargs={"to": ["a@x.org", "b@x.org"]})
    seen = []

    def record(execute, sql, params, many, context):
        if "jobs_job" in sql:
            seen.append(connection.in_atomic_block)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        total = notification_recipients_since(
            owner_id=user.id, task_name="send_notification", since=timezone.now() - timedelta(days=1)
        )
    assert total == 2
    assert seen == [True]
