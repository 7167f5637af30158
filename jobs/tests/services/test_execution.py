"""The worker-side lifecycle (jobs.services.execution): start, progress, heartbeat, succeed, fail.

Every legal transition and the illegal ones around it; each test asserts on the job row and
its timeline, which are the truth clients and operators see.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.catalog import RetryPolicy
from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.services.execution import (
    RunState,
    job_fail,
    job_heartbeat,
    job_requeue_interrupted,
    job_start,
    job_succeed,
    job_update_progress,
)
from jobs.services.operations import job_cancel
from jobs.tests.factories import LONG_RUNNING_TASK, TERMINAL, kinds, make, nested, snapshot, timeline
from taskhub.errors import Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


# --- start ---------------------------------------------------------------------------------------


def test_start_moves_pending_to_running():
    job = make()
    started = job_start(job_id=job.id, worker="w1:42")
    assert started.id == job.id
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.RUNNING
    assert row.worker == "w1:42"
    assert row.started_at is not None and row.heartbeat_at is not None
    (event,) = timeline(row, "started")
    assert (event.kind, event.from_status, event.to_status, event.actor_label) == (
        "started",
        "pending",
        "running",
        "worker w1:42",
    )


@pytest.mark.parametrize("status", ["running", *TERMINAL])
def test_start_of_a_job_that_is_not_pending_returns_none_and_changes_nothing(status):
    job = make(status)
    before, lines = snapshot(job), kinds(job)  # the lines its row derives
    assert job_start(job_id=job.id, worker="w2:1") is None
    assert snapshot(job) == before
    assert kinds(job) == lines


def test_start_of_a_message_for_another_attempt_changes_nothing():
    """A late duplicate of attempt 1's message must not start attempt 2 (re-queued meanwhile)."""
    job = make(attempts=1)
    assert job_start(job_id=job.id, worker="w", attempts=0) is None
    assert Job.objects.get(id=job.id).status == JobStatus.PENDING and kinds(job) == ["created"]
    assert job_start(job_id=job.id, worker="w", attempts=1).status == JobStatus.RUNNING


def test_start_before_run_at_changes_nothing():
    """A duplicate delivered while the retry still waits for its backoff does not start it early."""
    waiting = make(attempts=1, run_at=timezone.now() + timedelta(seconds=30))
    assert job_start(job_id=waiting.id, worker="w", attempts=1) is None
    assert Job.objects.get(id=waiting.id).status == JobStatus.PENDING
    due = make(attempts=1, run_at=timezone.now() + timedelta(seconds=1))  # within the tolerance
    assert job_start(job_id=due.id, worker="w", attempts=1) is not None


def test_start_of_an_unknown_job_returns_none(db):
    assert job_start(job_id="00000000-0000-0000-0000-000000000000", worker="w") is None


# --- progress ------------------------------------------------------------------------------------


def test_progress_is_written_to_a_running_job():
    job = make("running")
    assert job_update_progress(job_id=job.id, progress=42, meta={"step": 2}, message="half", attempts=0) is RunState.OK
    row = Job.objects.get(id=job.id)
    assert (row.progress, row.progress_meta) == (42, {"step": 2, "message": "half"})
    assert row.status == JobStatus.RUNNING


@pytest.mark.parametrize("status", ["pending", *TERMINAL])
def test_late_progress_never_revives_a_finished_job(status):
    job = make(status, progress=7 if status != "succeeded" else 100)
    before = snapshot(job)
    assert job_update_progress(job_id=job.id, progress=50, message="late") is RunState.GONE
    assert job_update_progress(job_id=job.id, progress=60, attempts=0) is RunState.GONE
    assert snapshot(job) == before


def test_progress_of_a_deleted_job_is_gone(db):
    assert job_update_progress(job_id="00000000-0000-0000-0000-000000000000", progress=5) is RunState.GONE


@pytest.mark.parametrize("progress", [-1, 101, 100.5, "50", None, True, float("nan")])
def test_progress_outside_0_to_100_is_invalid(progress):
    job = make("running", progress=10)
    with pytest.raises(InvalidInput) as caught:
        job_update_progress(job_id=job.id, progress=progress)
    assert "progress" in caught.value.fields
    assert Job.objects.get(id=job.id).progress == 10


@pytest.mark.parametrize("meta", [{"loss": float("nan")}, {"note": "a\x00b"}, {"when": object()}])
def test_progress_metadata_that_cannot_be_stored_is_invalid(meta):
    job = make("running", progress=10, progress_meta={"message": "before"})
    with pytest.raises(InvalidInput) as caught:
        job_update_progress(job_id=job.id, progress=20, meta=meta)
    assert "progress_meta" in caught.value.fields
    job.refresh_from_db()
    assert job.progress == 10 and job.progress_meta == {"message": "before"}


def test_progress_with_a_stale_attempt_is_fenced_off():
    """A worker that lost its job (re-queued as attempt 1) cannot write over the new attempt."""
    job = make("running", attempts=1, progress=30)
    assert job_update_progress(job_id=job.id, progress=90, attempts=0) is RunState.GONE
    assert Job.objects.get(id=job.id).progress == 30
    assert job_update_progress(job_id=job.id, progress=35, attempts=1) is RunState.OK
    assert Job.objects.get(id=job.id).progress == 35


def test_progress_of_a_job_being_cancelled_asks_the_task_to_stop():
    job = make("running", progress=10, cancel_requested_at=timezone.now())
    assert job_update_progress(job_id=job.id, progress=20, attempts=0) is RunState.CANCEL_REQUESTED
    assert Job.objects.get(id=job.id).progress == 10


def test_heartbeat_refreshes_and_flushes_progress():
    job = make("running", heartbeat_at=timezone.now() - timedelta(seconds=30))
    state_, _ = job_heartbeat(job_id=job.id, attempts=0, progress=15, meta={"message": "m"})
    assert state_ is RunState.OK
    row = Job.objects.get(id=job.id)
    assert (row.progress, row.progress_meta) == (15, {"message": "m"})
    assert row.heartbeat_at > timezone.now() - timedelta(seconds=5)
    assert job_heartbeat(job_id=job.id, attempts=1)[0] is RunState.GONE


def test_heartbeat_of_a_job_being_cancelled_keeps_it_fresh_and_reports_the_request():
    """While a cancelled job winds down its worker is alive: the sweeper must not reap it."""
    requested = timezone.now() - timedelta(seconds=20)
    job = make("running", heartbeat_at=timezone.now() - timedelta(seconds=30), cancel_requested_at=requested)
    state_, waited = job_heartbeat(job_id=job.id, attempts=0)
    assert state_ is RunState.CANCEL_REQUESTED and 20 <= waited < 25  # seconds since the request
    assert Job.objects.get(id=job.id).heartbeat_at > timezone.now() - timedelta(seconds=5)


# --- succeed -------------------------------------------------------------------------------------


def test_succeed_stores_the_result_and_completes_progress():
    job = make("running", progress=60)
    job_succeed(job_id=job.id, attempts=0, result={"rows": 3, "at": "now"}, worker="w1:1")
    row = Job.objects.get(id=job.id)
    assert (row.status, row.progress, row.result) == (
        "succeeded",
        100,
        {"rows": 3, "at": "now"},
    )
    assert row.finished_at is not None
    assert kinds(job) == ["created", "started", "succeeded"]


@pytest.mark.parametrize(
    "result",
    [
        object(),
        {1, 2},
        {"loss": float("nan")},
        [float("inf")],
        {"text": "a\x00b"},
        "\udc80",
        nested(150),
    ],
)
def test_succeed_with_a_result_that_is_not_json_is_refused(result):
    job = make("running", progress=60)
    with pytest.raises(InvalidInput) as caught:
        job_succeed(job_id=job.id, attempts=0, result=result)
    assert caught.value.code == "result_not_json"
    row = Job.objects.get(id=job.id)
    assert (row.status, row.result) == (
        "running",
        None,
    )  # still running: the task base records the failure


@pytest.mark.parametrize("status", ["pending", *TERMINAL])
def test_succeed_of_a_job_that_is_not_running_is_a_conflict(status):
    job = make(status)
    before = snapshot(job)
    with pytest.raises(Conflict):
        job_succeed(job_id=job.id, attempts=0, result=1)
    assert snapshot(job) == before


def test_succeed_of_a_stale_attempt_is_a_conflict():
    job = make("running", attempts=2)
    with pytest.raises(Conflict):
        job_succeed(job_id=job.id, attempts=1, result=1)
    assert Job.objects.get(id=job.id).status == JobStatus.RUNNING


# --- fail ----------------------------------------------------------------------------------------


def test_fail_with_retries_left_schedules_a_retry(published, django_capture_on_commit_callbacks):
    job = make("running", max_retries=2)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        retried = job_fail(
            job_id=job.id,
            attempts=0,
            error="OSError: down",
            traceback="tb",
            worker="w1:1",
        )
    assert retried is True
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.error) == ("pending", 1, "OSError: down")
    assert row.run_at > before  # backoff
    assert row.finished_at is None
    event = JobEvent.objects.get(job=row, kind=JobEventKind.RETRY_SCHEDULED)
    assert (event.from_status, event.to_status) == ("running", "pending")
    assert event.data["error"] == "OSError: down"
    assert event.data["traceback"] == "tb"
    assert "OSError: down" in event.message
    # Sent again (with a countdown) once the transaction committed.
    assert [m["id"] for m in published] == [str(job.id)]
    assert row.dispatched_at is not None


def test_an_automatic_retry_starts_from_zero_progress(published, django_capture_on_commit_callbacks):
    job = make("running", max_retries=2, progress=70, progress_meta={"message": "7/10 files"})
    with django_capture_on_commit_callbacks(execute=True):
        assert job_fail(job_id=job.id, attempts=0, error="OSError: down") is True
    row = Job.objects.get(id=job.id)
    assert (row.status, row.progress, row.progress_meta) == ("pending", 0, {})


def test_a_cancelled_job_that_raises_with_retries_left_ends_revoked(user):
    """The cancel was asked for; the exception it may cause (or any other) must not turn it into a
    failure, nor be retried."""
    job = make("running", max_retries=3)
    job_cancel(job_id=job.id, by=user)
    assert job_fail(job_id=job.id, attempts=0, error="RuntimeError: interrupted", traceback="tb") is False
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.error) == (JobStatus.REVOKED, 0, "RuntimeError: interrupted")
    assert kinds(row)[-1] == "revoked"


def test_fail_without_retries_left_fails_with_error_and_traceback():
    job = make("running", max_retries=1, attempts=1)
    assert job_fail(job_id=job.id, attempts=1, error="ValueError: bad", traceback="Traceback ...") is False
    row = Job.objects.get(id=job.id)
    assert (row.status, row.error, row.traceback, row.attempts) == (
        "failed",
        "ValueError: bad",
        "Traceback ...",
        1,
    )
    assert row.finished_at is not None
    assert kinds(job) == ["created", "started", "failed"]


def test_fail_that_is_not_retryable_fails_at_once():
    job = make("running", max_retries=3)
    assert job_fail(job_id=job.id, attempts=0, error="fatal", auto_retry=False) is False
    assert Job.objects.values_list("status", "attempts").get(id=job.id) == ("failed", 0)


def test_every_attempt_keeps_its_error_in_the_timeline():
    job = make(max_retries=1)
    job_start(job_id=job.id, worker="w")
    job_fail(job_id=job.id, attempts=0, error="first error")
    Job.objects.filter(id=job.id).update(run_at=None)
    job_start(job_id=job.id, worker="w")
    job_fail(job_id=job.id, attempts=1, error="second error")
    row = Job.objects.get(id=job.id)
    assert (row.status, row.error, row.attempts) == ("failed", "second error", 1)
    assert kinds(job) == ["created", "started", "retry_scheduled", "started", "failed"]
    errors = [e.data.get("error") for e in timeline(row, "retry_scheduled", "failed")]
    assert errors == ["first error", "second error"]


@pytest.mark.parametrize("status", ["pending", *TERMINAL])
def test_fail_of_a_job_that_is_not_running_is_a_conflict(status):
    job = make(status, max_retries=3)
    before = snapshot(job)
    with pytest.raises(Conflict):
        job_fail(job_id=job.id, attempts=0, error="late")
    assert snapshot(job) == before


def test_fail_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        job_fail(job_id="00000000-0000-0000-0000-000000000000", attempts=0, error="x")


# --- retry backoff (the catalog entry's RetryPolicy, used by job_fail) ---------------------------


def test_retry_delay_grows_exponentially_up_to_the_cap():
    policy = RetryPolicy(max_retries=10, backoff=2.0, backoff_max=60.0, jitter=False)
    assert [policy.delay(attempts) for attempts in range(7)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_retry_delay_jitter_stays_between_half_and_the_full_delay():
    policy = RetryPolicy(max_retries=10, backoff=2.0, backoff_max=60.0, jitter=True)
    for attempts, full in [(0, 2.0), (3, 16.0), (9, 60.0)]:
        samples = [policy.delay(attempts) for _ in range(200)]
        assert all(full / 2 <= delay <= full for delay in samples)
        assert len(set(samples)) > 1  # jittered: retries of many jobs spread out


# --- re-queue a job whose process ends for another job's time limit --------------------------------


def test_requeue_interrupted_sends_the_next_attempt_at_once_even_without_retries_left(
    published, django_capture_on_commit_callbacks
):
    job = make("running", max_retries=0, progress=40)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_requeue_interrupted(job_id=job.id, attempts=0, reason="Its worker process ended", worker="w1:1")
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.progress, row.run_at) == ("pending", 1, 0, None)
    assert row.error_type == "WorkerLost"
    event = JobEvent.objects.get(job=row, kind=JobEventKind.REQUEUED)
    assert event.message == "Its worker process ended; re-queued as attempt 2."
    assert [m["id"] for m in published] == [str(job.id)]


@pytest.mark.parametrize("fields", [{"attempts": 1}, {"cancel_requested_at": timezone.now()}, {"status": "failed"}])
def test_requeue_interrupted_of_another_attempt_a_cancelled_or_finished_job_changes_nothing(fields, published):
    """Another attempt's row is not this run's; a cancelled one is the sweeper's to revoke."""
    status = fields.pop("status", "running")
    job = make(status, **fields)
    before = snapshot(job)
    assert job_requeue_interrupted(job_id=job.id, attempts=0, reason="Its worker process ended") is False
    assert snapshot(job) == before and published == []


# --- fencing: a late write of a worker that lost its job -------------------------------------------

FENCED = "fenced write refused"


def fenced_lines(caplog, job) -> list[str]:
    return [r.getMessage() for r in caplog.records if FENCED in r.getMessage() and str(job.id) in r.getMessage()]


def test_late_writes_of_a_stale_attempt_change_nothing_and_are_logged(caplog):
    """A worker cut off (or paused) while the sweeper re-queued its job writes late: each of its
    heartbeat, progress and outcome changes 0 rows and logs a WARNING naming the job and its attempt
    (what the many-hosts bed counts, docs/RELIABILITY.md)."""
    job = make("running", attempts=1, progress=30, worker="worker2:7")
    before = snapshot(job)
    caplog.set_level("WARNING", logger="jobs.services")
    assert job_heartbeat(job_id=job.id, attempts=0, progress=90, meta={}) == (RunState.GONE, None)
    assert job_update_progress(job_id=job.id, progress=95, attempts=0) is RunState.GONE
    with pytest.raises(Conflict):
        job_succeed(job_id=job.id, attempts=0, result=1, worker="worker1:9")
    with pytest.raises(Conflict):
        job_fail(job_id=job.id, attempts=0, error="late", auto_retry=False, worker="worker1:9")
    assert snapshot(job) == before
    lines = fenced_lines(caplog, job)
    assert [line.split(": ", 2)[1] for line in lines] == [FENCED] * 4, lines
    assert all("attempt 1" in line and "0 rows" in line for line in lines), lines
    assert all(r.levelname == "WARNING" for r in caplog.records if FENCED in r.getMessage())


def test_refusals_that_are_no_late_write_are_not_logged_as_fenced(caplog):
    """A job being cancelled refuses the heartbeat's progress by design; the current attempt's
    writes match: neither is a fenced late write."""
    cancelling = make("running", progress=10, cancel_requested_at=timezone.now())
    current = make("running", attempts=1)
    caplog.set_level("WARNING", logger="jobs.services")
    assert job_heartbeat(job_id=cancelling.id, attempts=0)[0] is RunState.CANCEL_REQUESTED
    assert job_update_progress(job_id=cancelling.id, progress=20, attempts=0) is RunState.CANCEL_REQUESTED
    assert job_update_progress(job_id=current.id, progress=20, attempts=1) is RunState.OK
    assert not [r for r in caplog.records if FENCED in r.getMessage()]
