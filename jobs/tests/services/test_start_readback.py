"""job_start reads back what a run needs from its own UPDATE (RETURNING), not with a second query;
a database without RETURNING (SQLite before 3.35) gets the same answer another way."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobStatus
from jobs.services.execution import job_start
from jobs.services.gates import limits_for, workers_alive_for
from jobs.tests.factories import kinds, make

pytestmark = pytest.mark.django_db


def test_start_returns_the_attempt_from_the_update_itself():
    job = make(attempts=2)
    limits_for(queue=job.queue, task=job.celery_task_name)  # rate limits: a per-process cache, read once a second
    workers_alive_for(job.queue)  # the workers alive: a per-process cache, read every 5 s
    with CaptureQueriesContext(connection) as queries:
        started = job_start(job_id=str(job.id), worker="w:1")
    statements = [query["sql"] for query in queries.captured_queries if query["sql"].split()[0] != "SAVEPOINT"]
    # One statement: the conditional UPDATE … RETURNING (and the owner's row, locked; its timeline line
    # is derived from the row, issue 20); then the owner's running count (fair shares).
    assert [sql.split()[0] for sql in statements if sql.split()[0] in ("SELECT", "UPDATE", "INSERT", "WITH")] == [
        "WITH",
        "SELECT",
    ]
    assert "RETURNING" in statements[0] and "\"status\" = 'pending'" in statements[0]
    assert "INSERT INTO" not in statements[0]
    assert started.id == job.id and started.attempts == 2 and started.status == JobStatus.RUNNING
    assert started.name == job.name  # any other field is read on first access
    assert kinds(job) == ["created", "started"]


def test_start_without_returning_support_gives_the_same_answer(monkeypatch):
    monkeypatch.setattr("jobs.services._sql.can_return", lambda alias: False)
    job = make(attempts=1)
    started = job_start(job_id=job.id, worker="w:1")
    assert started.attempts == 1 and Job.objects.get(id=job.id).status == JobStatus.RUNNING
    assert job_start(job_id=job.id, worker="w:2") is None  # no longer pending: nothing matched
    assert Job.objects.get(id=job.id).worker == "w:1" and kinds(job) == ["created", "started"]
