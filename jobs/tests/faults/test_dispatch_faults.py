"""Faults around sending, provoked in the real database (a trigger), not by patching our code."""

from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.creation import job_create
from jobs.services.operations import job_cancel
from jobs.tests.factories import make

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def trigger(name: str, timing: str, level: str, body: str):
    """A PL/pgSQL trigger on the job table for the duration of the block."""
    table = Job._meta.db_table
    with connection.cursor() as cursor:
        function = f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$"
        cursor.execute(function)
        cursor.execute(f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH {level} EXECUTE FUNCTION {name}()")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")


def test_a_failing_dispatched_at_update_after_commit_still_returns_the_job(user, published):
    """A job created inside the caller's larger transaction (the django.tasks backend in the
    application's own) is sent after that commit, then its send time is written; that write failed
    (a database blip). The caller must get its job, or a retry would duplicate it."""
    refuse = "IF NEW.dispatched_at IS NOT NULL THEN RAISE EXCEPTION 'database blip'; END IF; RETURN NEW;"
    with trigger("refuse_dispatched_at", "BEFORE UPDATE", "ROW", refuse), transaction.atomic():
        created = job_create(owner=user, celery_task_name="long_running_task", args=[1])
    job = Job.objects.get(id=created.id)
    assert job.status == JobStatus.PENDING and [m["id"] for m in published] == [str(job.id)]
    assert job.dispatched_at is None  # the sweeper's later re-send is harmless: one delivery runs it


def test_an_api_create_is_written_once_already_marked_sent(user_client, published):
    """An API request's job is sent inside its own transaction and inserted already marked sent:
    no UPDATE follows (the trigger would refuse one)."""
    refuse = "RAISE EXCEPTION 'no update expected'; RETURN NEW;"
    with trigger("refuse_updates", "BEFORE UPDATE", "ROW", refuse):
        response = user_client.post("/api/v1/jobs/", {"celery_task_name": "long_running_task", "args": [1]})
    assert response.status_code == 201, response.content
    job = Job.objects.get(id=response.json()["id"])
    assert job.dispatched_at is not None and [m["id"] for m in published] == [str(job.id)]


def test_a_cancel_racing_a_requeue_cancels_instead_of_answering_409(user):
    """The cancel finds the job running, and before its next step the sweeper re-queues it (running ->
    pending). The cancel must follow the job, not report "it already pending"."""
    job = make("running", owner=user, max_retries=1)
    requeue_once = f"""
        IF EXISTS (SELECT 1 FROM {Job._meta.db_table} WHERE id = '{job.id}' AND status = 'running') THEN
            UPDATE {Job._meta.db_table} SET status = 'pending', attempts = attempts + 1 WHERE id = '{job.id}';
        END IF;
        RETURN NULL;"""
    # Fires after the cancel's first UPDATE (pending -> revoked, which matches no row yet).
    with trigger("requeue_after_first_try", "AFTER UPDATE", "STATEMENT", requeue_once):
        cancelled = job_cancel(job_id=job.id, by=user)
    assert cancelled.status == JobStatus.REVOKED and cancelled.cancelled_by == user
    assert JobEvent.objects.filter(job_id=job.id, kind="revoked").count() == 1
