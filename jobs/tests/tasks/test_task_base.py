"""The task base inside one process (Celery's eager apply): what a job run writes."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import job_start, job_succeed, job_update_progress
from jobs.services.operations import job_cancel
from jobs.tasks import run as task_run
from jobs.tasks.common_tasks import process_data
from jobs.tasks.model_tasks import train_model
from jobs.tests.factories import timeline
from taskhub.errors import InvalidInput

FEATURES = [[x / 10] for x in range(20)]
TARGETS = [2 * f[0] - 1 for f in FEATURES]


def run_eagerly(task, job: Job, **kwargs):
    with CaptureQueriesContext(connection) as queries:
        outcome = task.apply(kwargs=kwargs, task_id=str(job.id))
    # A transition is one statement on PostgreSQL: WITH changed AS (UPDATE …) INSERT the event; a start
    # and a success write no line (derived from the row, issue 20).
    writes = [
        q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE", "WITH")
    ]
    return outcome, writes


def new_job(user, task: str, **kwargs) -> Job:
    return job_create(owner=user, celery_task_name=task, kwargs=kwargs)


@pytest.mark.parametrize("epochs", [10, 400])
def test_success_path_writes_a_bounded_number_of_rows(user, settings, epochs):
    settings.JOB_PROGRESS_MIN_INTERVAL = 60  # well above the run time: no report is due before the end
    settings.JOB_HEARTBEAT_INTERVAL = 60
    job = new_job(user, "train_model", features=FEATURES, targets=TARGETS, epochs=epochs)
    outcome, writes = run_eagerly(train_model, job, features=FEATURES, targets=TARGETS, epochs=epochs)
    assert outcome.successful()
    # start: one UPDATE statement (its line derived from the row); finish: the same. The progress reports
    # came within JOB_PROGRESS_MIN_INTERVAL of the start's write: held, then superseded by the outcome.
    assert [sql.split()[0] for sql in writes] == ["WITH", "WITH"], writes
    assert all("UPDATE" in sql and "INSERT INTO" not in sql for sql in writes)
    assert [line.kind for line in timeline(job)] == ["created", "started", "succeeded"]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.progress == 100 and job.result["epochs"] == epochs


def test_progress_writes_are_throttled_but_the_final_state_is_exact(user, settings):
    settings.JOB_PROGRESS_MIN_INTERVAL = 0  # every report is written
    settings.JOB_HEARTBEAT_INTERVAL = 60
    job = new_job(user, "process_data", records=[{"v": i} for i in range(50)])
    outcome, writes = run_eagerly(process_data, job, records=[{"v": i} for i in range(50)])
    assert outcome.successful()
    assert len(writes) == 2 + 51  # start, finish, and 51 progress reports (0 % and one per record)
    job.refresh_from_db()
    assert job.result["groups"]["all"]["fields"]["v"] == {
        "count": 50,
        "sum": 1225.0,
        "min": 0.0,
        "max": 49.0,
        "mean": 24.5,
    }


def test_a_job_that_is_not_pending_is_skipped_without_running(user):
    job = new_job(user, "train_model", features=FEATURES, targets=TARGETS, epochs=5)
    job_cancel(job_id=job.id, by=user)
    outcome, writes = run_eagerly(train_model, job, features=FEATURES, targets=TARGETS, epochs=5)
    assert outcome.state == "IGNORED"
    assert len(writes) == 1 and "\"status\" = 'pending'" in writes[0]  # the conditional start, matching nothing
    assert Job.objects.get(id=job.id).status == JobStatus.REVOKED
    assert [line.kind for line in timeline(job)] == ["created", "revoked"]


def test_cancel_requested_while_running_stops_at_the_next_progress_call(user, settings, monkeypatch):
    """The cancel lands between two progress calls; the next call raises and the job is revoked."""
    settings.JOB_PROGRESS_MIN_INTERVAL = 0
    settings.JOB_HEARTBEAT_INTERVAL = 60
    job = new_job(user, "process_data", records=[{"v": 1}] * 10)
    calls = []
    original = job_update_progress

    def cancel_after_first(**kwargs):
        calls.append(kwargs["progress"])
        if len(calls) == 2:
            job_cancel(job_id=job.id, by=user)
        return original(**kwargs)

    monkeypatch.setattr(task_run, "job_update_progress", cancel_after_first)
    outcome, _ = run_eagerly(process_data, job, records=[{"v": 1}] * 10)
    job.refresh_from_db()
    assert outcome.state == "IGNORED"
    assert job.status == JobStatus.REVOKED and len(calls) == 2 and job.cancelled_by == user
    assert [line.kind for line in timeline(job)] == [
        "created",
        "started",
        "cancel_requested",
        "revoked",
    ]


def test_result_that_is_not_json_fails_the_job_with_a_clear_error(user):
    job = new_job(user, "train_model", features=FEATURES, targets=TARGETS, epochs=1)
    job_id = job.id
    job_start(job_id=job_id, worker="test")
    with pytest.raises(InvalidInput, match="not JSON serializable"):
        job_succeed(job_id=job_id, attempts=0, result={"when": object()})
    assert Job.objects.get(id=job_id).status == JobStatus.RUNNING  # nothing half-written


def test_termination_outside_a_prefork_pool_process_records_the_outcome_but_kills_nothing(user, caplog):
    """Under the solo/threads pool the task's process is the whole worker: never SIGKILL it."""
    from jobs.catalog import catalog
    from jobs.tasks.run import JobRun

    job = job_start(job_id=new_job(user, "blocking_sleep", seconds=1).id, worker="test")
    run = JobRun(job=job, entry=catalog.get("blocking_sleep"), worker="test")
    run._terminate("Terminated after the grace period.")  # this test process survives
    assert "Cannot terminate the task: not in a prefork pool process" in caplog.text
    assert Job.objects.get(id=job.id).status == JobStatus.REVOKED


@pytest.fixture
def soft_limited_task():
    """A task that hits Celery's soft time limit (registered for this test only)."""
    from celery.exceptions import SoftTimeLimitExceeded

    from jobs.catalog import catalog
    from jobs.tasks.registry import job_task
    from taskhub.celery import app

    name = "jobs.tests.soft_limited"

    @job_task(name=name, soft_time_limit=1, max_retries=3)
    def soft_limited(self) -> None:
        self.progress(10, "working")
        raise SoftTimeLimitExceeded()

    yield soft_limited
    catalog._entries.pop(name)
    catalog._names.pop(name)
    app.tasks.unregister(name)


def test_soft_time_limit_fails_the_job_without_retrying(user, settings, soft_limited_task):
    settings.JOB_HEARTBEAT_INTERVAL = 60
    job = new_job(user, "jobs.tests.soft_limited")
    assert job.max_retries == 3
    outcome, _ = run_eagerly(soft_limited_task, job)
    job.refresh_from_db()
    assert outcome.failed()
    assert job.status == JobStatus.FAILED and job.attempts == 0
    assert job.error.startswith("Soft time limit exceeded") and "SoftTimeLimitExceeded" in job.traceback


@pytest.fixture
def hard_limited_task():
    """A task whose hard time limit is raised in it (registered for this test only)."""
    from celery.exceptions import TimeLimitExceeded

    from jobs.catalog import catalog
    from jobs.tasks.registry import job_task
    from taskhub.celery import app

    name = "jobs.tests.hard_limited"

    @job_task(name=name, time_limit=5, max_retries=3)
    def hard_limited(self) -> None:
        raise TimeLimitExceeded()

    yield hard_limited
    catalog.remove(name)
    app.tasks.unregister(name)


def test_a_hard_limit_the_watchdog_could_not_record_fails_the_job_without_retrying(user, settings, hard_limited_task):
    """The watchdog records the hard limit; if it could not (the database was out of reach), the
    task's own way out records it the same: failed, the limit named, no automatic retry."""
    settings.JOB_HEARTBEAT_INTERVAL = 60
    job = new_job(user, "jobs.tests.hard_limited")
    outcome, _ = run_eagerly(hard_limited_task, job)
    job.refresh_from_db()
    assert outcome.failed()
    assert (job.status, job.attempts, job.error_type) == (JobStatus.FAILED, 0, "TimeLimitExceeded")
    assert job.error == "Hard time limit (5 s) exceeded."


def _running_run(user, task: str, **kwargs) -> "task_run.JobRun":
    """A job of ``task`` started as a worker would, with its run (the watchdog is not started)."""
    from jobs.catalog import catalog

    job = job_start(job_id=new_job(user, task, **kwargs).id, worker="test")
    return task_run.JobRun(job=job, entry=catalog.get(task), worker="test")


def test_a_cooperative_task_being_cancelled_gets_the_grace_period(user):
    """With the production grace period (30 s) a cancelled cooperative task is left to stop at its
    next progress call; once the grace period is over the watchdog terminates it."""
    run = _running_run(user, "long_running_task", seconds=60)
    job_cancel(job_id=run.job_id, by=user)
    run._beat()  # a heartbeat right after the cancel: it waits
    assert Job.objects.get(id=run.job_id).status == JobStatus.RUNNING and run.cancel_requested_at
    Job.objects.filter(id=run.job_id).update(cancel_requested_at=timezone.now() - timedelta(seconds=31))
    run._beat()  # the grace period is over
    assert Job.objects.get(id=run.job_id).status == JobStatus.REVOKED
    assert "grace period 30s" in JobEvent.objects.get(job_id=run.job_id, kind="revoked").message


def test_a_task_that_is_not_cancellable_is_terminated_at_the_first_heartbeat_after_a_cancel(user):
    run = _running_run(user, "blocking_sleep", seconds=60)
    requested = job_cancel(job_id=run.job_id, by=user)
    asked = JobEvent.objects.get(job_id=run.job_id, kind="cancel_requested")
    assert "terminated at its next heartbeat" in asked.message
    run._beat()
    job = Job.objects.get(id=run.job_id)
    assert job.status == JobStatus.REVOKED
    assert (job.finished_at - requested.cancel_requested_at).total_seconds() < 5
    assert "does not stop cooperatively" in JobEvent.objects.get(job_id=run.job_id, kind="revoked").message


def test_a_report_held_by_the_throttle_at_the_end_is_written_with_the_outcome(user):
    """Production defaults: ``progress(0, "0/0s")`` right after the start is held (within
    JOB_PROGRESS_MIN_INTERVAL of the start's write); the run ends first and the success carries it:
    two statements in all."""
    from jobs.tasks.common_tasks import long_running_task

    job = new_job(user, "long_running_task", seconds=0)
    outcome, writes = run_eagerly(long_running_task, job, seconds=0)
    assert outcome.successful()
    assert [sql.split()[0] for sql in writes] == ["WITH", "WITH"], writes
    job.refresh_from_db()
    assert (job.status, job.progress, job.progress_meta) == (JobStatus.SUCCEEDED, 100, {"message": "0/0s"})


def test_a_report_held_by_the_throttle_when_the_task_fails_is_written_before_the_failure(user):
    """Where the run had got to stays on the failed job."""
    from jobs.tasks.common_tasks import flaky_task

    job = job_create(owner=user, celery_task_name="flaky_task", kwargs={"fail_times": 1}, max_retries=0)
    outcome, _ = run_eagerly(flaky_task, job, fail_times=1)
    assert outcome.failed()
    job.refresh_from_db()
    assert (job.status, job.progress, job.progress_meta) == (JobStatus.FAILED, 50, {"message": "attempt 1"})
