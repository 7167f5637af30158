"""Operator actions (jobs.services.operations): cancel, retry, delete."""

import pytest

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.execution import RunState, job_revoke, job_start, job_update_progress
from jobs.services.operations import job_cancel, job_delete, job_retry
from jobs.tests.factories import LONG_RUNNING_TASK, TERMINAL, kinds, make, snapshot
from taskhub.errors import Conflict, NotFound

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_of_a_pending_job_revokes_it_at_once(user):
    job = make()
    cancelled = job_cancel(job_id=job.id, by=user)
    assert cancelled.status == JobStatus.REVOKED
    row = Job.objects.get(id=job.id)
    assert (row.status, row.cancelled_by) == ("revoked", user)
    assert row.cancel_requested_at is not None and row.finished_at is not None
    event = JobEvent.objects.get(job=row)
    assert (event.kind, event.from_status, event.to_status, event.actor) == (
        "revoked",
        "pending",
        "revoked",
        user,
    )
    # The message may still be in the broker: the worker must then skip it.
    assert job_start(job_id=job.id, worker="w") is None
    assert Job.objects.get(id=job.id).status == JobStatus.REVOKED


def test_cancel_of_a_running_job_requests_a_stop(user):
    job = make("running", progress=40)
    cancelled = job_cancel(job_id=job.id, by=user)
    row = Job.objects.get(id=job.id)
    assert cancelled.status == row.status == JobStatus.RUNNING
    assert row.cancel_requested_at is not None
    assert row.cancelled_by == user
    assert row.finished_at is None
    assert kinds(job) == ["created", "started", "cancel_requested"]
    # The task learns it at its next progress call and stops; the row ends revoked.
    assert job_update_progress(job_id=job.id, progress=50, attempts=0) is RunState.CANCEL_REQUESTED
    job_revoke(job_id=job.id, attempts=0, reason="stopped")
    assert Job.objects.values_list("status", "progress").get(id=job.id) == (
        "revoked",
        40,
    )
    assert kinds(job) == ["created", "started", "cancel_requested", "revoked"]


def test_cancel_twice_is_a_conflict(user):
    pending, running = make(), make("running")
    job_cancel(job_id=pending.id, by=user)
    job_cancel(job_id=running.id, by=user)
    with pytest.raises(Conflict) as caught:
        job_cancel(job_id=pending.id, by=user)
    assert caught.value.code == "invalid_state"
    with pytest.raises(Conflict) as caught:
        job_cancel(job_id=running.id, by=user)
    assert caught.value.code == "cancel_pending"
    assert JobEvent.objects.count() == 2


@pytest.mark.parametrize("status", TERMINAL)
def test_cancel_of_a_finished_job_is_a_conflict(user, status):
    job = make(status)
    before = snapshot(job)
    with pytest.raises(Conflict) as caught:
        job_cancel(job_id=job.id, by=user)
    assert status in caught.value.message
    assert snapshot(job) == before


def test_cancel_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        job_cancel(job_id="00000000-0000-0000-0000-000000000000")


# --- retry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "revoked"])
def test_retry_runs_the_same_job_again_and_keeps_its_history(
    user, status, published, django_capture_on_commit_callbacks
):
    job = make(status, attempts=0, progress=30, worker="w1:1")
    JobEvent.objects.create(job=job, kind=status, to_status=status, message="earlier")
    old_error = job.error
    with django_capture_on_commit_callbacks(execute=True):
        retried = job_retry(job_id=job.id, by=user)
    assert retried.id == job.id
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.progress, row.error, row.worker) == (
        "pending",
        1,
        0,
        "",
        "",
    )
    assert row.finished_at is None and row.cancel_requested_at is None
    # The lines its row derived (created; started for the failed one) are written before the retry clears them.
    assert kinds(job) == {"failed": ["started", "created"], "revoked": ["created"]}[status] + [status, "retried"]
    assert JobEvent.objects.filter(job=row).count() == len(kinds(job))
    event = JobEvent.objects.get(job=row, kind="retried")
    assert (event.from_status, event.to_status, event.actor) == (
        status,
        "pending",
        user,
    )
    assert event.data == {"previous_error": old_error, "attempt": 2}  # attempts count from 1
    assert event.message == "Retried by user " + user.username + " (attempt 2)."
    assert [m["id"] for m in published] == [str(job.id)]
    assert row.dispatched_at is not None


@pytest.mark.parametrize("status", ["pending", "running", "succeeded"])
def test_retry_of_a_job_that_did_not_fail_is_a_conflict(user, status, django_capture_on_commit_callbacks):
    job = make(status)
    before, lines = snapshot(job), kinds(job)  # the lines its row derives
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Conflict) as caught,
    ):
        job_retry(job_id=job.id, by=user)
    assert caught.value.code == "invalid_state"
    assert (snapshot(job), kinds(job), callbacks) == (before, lines, [])


def test_retry_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        job_retry(job_id="00000000-0000-0000-0000-000000000000")


# --- delete --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", TERMINAL)
def test_delete_removes_a_finished_job_with_its_timeline(status):
    job, kept = make(status), make("succeeded")
    JobEvent.objects.create(job=job, kind="created")
    JobEvent.objects.create(job=kept, kind="created")
    job_delete(job_id=job.id)
    assert not Job.objects.filter(id=job.id).exists()
    assert not JobEvent.objects.filter(job_id=job.id).exists()
    assert JobEvent.objects.filter(job=kept).count() == 1


@pytest.mark.parametrize("status", ["pending", "running"])
def test_delete_of_an_active_job_says_to_cancel_first(status):
    job = make(status)
    with pytest.raises(Conflict) as caught:
        job_delete(job_id=job.id)
    assert caught.value.code == "job_active"
    assert "cancel it first" in caught.value.message
    assert Job.objects.filter(id=job.id).exists()


def test_delete_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        job_delete(job_id="00000000-0000-0000-0000-000000000000")
