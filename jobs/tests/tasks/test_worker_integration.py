"""A real Celery worker runs jobs from the API: success, failure, retries, cancel, priorities."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus
from jobs.tests.factories import timeline
from taskhub.testing import wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]


def create(client, task: str, *, args=None, kwargs=None, **extra) -> str:
    body = {"name": f"{task} test", "celery_task_name": task, "args": args or [], "kwargs": kwargs or {}, **extra}
    response = client.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    if not extra.get("run_at"):
        assert response.json()["dispatched_at"], "sent after commit, before the answer"
    return response.json()["id"]


def kinds(job_id) -> list[str]:
    """The job's timeline as kinds in order (its stored and derived lines: ``jobs.timeline``)."""
    return [line.kind for line in timeline(job_id)]


def test_job_runs_from_pending_to_succeeded_with_progress(worker, user_client):
    job_id = create(user_client, "long_running_task", args=[2], kwargs={"param": "value"})
    seen = set()

    def finished():
        job = Job.objects.get(id=job_id)
        seen.add((job.status, job.progress))
        return job.status == JobStatus.SUCCEEDED

    wait_for(finished, timeout=30, interval=0.05)
    job = Job.objects.get(id=job_id)
    assert job.progress == 100
    assert job.result["seconds"] == 2 and job.result["labels"] == {"param": "value"}
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    assert job.worker.startswith(worker.name)
    assert ("running", 50) in seen or any(status == "running" and 0 < p < 100 for status, p in seen)
    assert kinds(job_id) == ["created", "started", "succeeded"]
    detail = user_client.get(f"/api/v1/tasks/{job_id}").json()
    assert detail["status"] == "succeeded" and detail["progress"] == 100


def test_failing_task_ends_failed_with_error_and_traceback(worker, user_client):
    job_id = create(user_client, "process_data", kwargs={"records": [1, 2, 3]})
    job = wait_status(job_id)
    assert job.status == JobStatus.FAILED
    assert job.error == "ValueError: every record must be a JSON object"
    assert "Traceback (most recent call last)" in job.traceback and "_records_from" in job.traceback
    assert kinds(job_id) == ["created", "started", "failed"]


def test_data_processing_and_training_return_real_results(worker, user_client):
    csv_id = create(
        user_client, "process_data", kwargs={"csv_text": "city,temp\nOslo,3\nOslo,5\nRome,20\n", "group_by": "city"}
    )
    features = [[x / 10] for x in range(20)]
    train_id = create(
        user_client,
        "train_model",
        kwargs={"features": features, "targets": [3 * f[0] + 1 for f in features], "epochs": 300, "learning_rate": 0.3},
    )
    csv_job, train_job = wait_status(csv_id), wait_status(train_id)
    assert csv_job.status == train_job.status == JobStatus.SUCCEEDED, (csv_job.error, train_job.error)
    assert csv_job.result["groups"]["Oslo"]["fields"]["temp"]["mean"] == 4.0
    assert csv_job.result["groups"]["Rome"]["records"] == 1
    assert train_job.result["weights"][0] == pytest.approx(3, abs=0.05)
    assert train_job.result["bias"] == pytest.approx(1, abs=0.05)
    assert train_job.result["loss"] < 1e-3


def test_automatic_retry_with_exponential_backoff(worker, user_client):
    job_id = create(user_client, "flaky_task", kwargs={"fail_times": 2}, max_retries=3)
    job = wait_status(job_id, timeout=45)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert job.result == {"attempt": 3}  # attempts are counted from 1; the third one succeeded
    retries = list(JobEvent.objects.filter(job_id=job_id, kind="retry_scheduled").order_by("at"))
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert all("RuntimeError: transient failure" in e.data["error"] for e in retries)
    # flaky_task: backoff 1s * 2**attempt with equal jitter -> [0.5, 1] then [1, 2] seconds.
    assert 0.5 <= retries[0].data["delay"] <= 1.0 and 1.0 <= retries[1].data["delay"] <= 2.0
    starts = [line.at for line in timeline(job_id, "started")]
    assert len(starts) == 3
    assert (starts[1] - retries[0].at).total_seconds() >= retries[0].data["delay"] - 0.05
    assert (starts[2] - retries[1].at).total_seconds() >= retries[1].data["delay"] - 0.05


def test_retries_exhausted_ends_failed(worker, user_client):
    job_id = create(user_client, "flaky_task", kwargs={"fail_times": 5}, max_retries=1)
    job = wait_status(job_id, JobStatus.FAILED, timeout=30)
    assert job.attempts == 1 and "attempt 2" in job.error  # the second attempt (attempts + 1) failed for good
    assert kinds(job_id).count("retry_scheduled") == 1


def test_cancel_running_cooperative_job_stops_at_next_progress(worker, user_client, user):
    job_id = create(user_client, "long_running_task", args=[60])
    wait_for(lambda: Job.objects.filter(id=job_id, status="running", progress__gt=0).exists(), timeout=20)
    asked = time.monotonic()
    response = user_client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested_at"]
    job = wait_status(job_id, timeout=10)
    assert time.monotonic() - asked < 5
    assert job.status == JobStatus.REVOKED and job.cancelled_by == user and job.progress < 100
    events = timeline(job_id)
    assert [e.kind for e in events] == ["created", "started", "cancel_requested", "revoked"]
    assert events[2].actor == user and "progress" in events[3].message


def test_cancel_non_cooperative_job_terminates_it_at_the_next_heartbeat(make_worker, user_client):
    """blocking_sleep is declared cancellable=False (it never calls progress): waiting out the
    grace period would only delay the stop, so the watchdog terminates it at once."""
    worker = make_worker()  # the production grace period, 30 s
    job_id = create(user_client, "blocking_sleep", kwargs={"seconds": 60})
    wait_status(job_id, JobStatus.RUNNING, timeout=20)
    pool_before = set(worker.pool_pids())
    response = user_client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200, response.json()
    requested = JobEvent.objects.get(job_id=job_id, kind="cancel_requested")
    assert "terminated at its next heartbeat" in requested.message
    job = wait_status(job_id, JobStatus.REVOKED, timeout=15)
    waited = (job.finished_at - job.cancel_requested_at).total_seconds()
    assert waited < 5, waited  # well inside the 30 s grace period
    assert "does not stop cooperatively" in JobEvent.objects.get(job_id=job_id, kind="revoked").message
    wait_for(lambda: set(worker.pool_pids()) - pool_before, timeout=10, message="a replacement pool process")
    # The re-queued message of the killed process is skipped: the job never runs again ...
    time.sleep(2)
    assert kinds(job_id).count("started") == 1 and Job.objects.get(id=job_id).status == JobStatus.REVOKED
    # ... and the worker goes on working.
    assert wait_status(create(user_client, "long_running_task", args=[0])).status == JobStatus.SUCCEEDED


def test_cancel_of_a_queued_job_means_it_never_runs(make_worker, user_client):
    worker = make_worker(concurrency=1)
    blocker = create(user_client, "long_running_task", args=[3])
    wait_status(blocker, JobStatus.RUNNING, timeout=20)
    queued = create(user_client, "long_running_task", args=[1])
    response = user_client.post(f"/api/v1/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert wait_status(blocker).status == JobStatus.SUCCEEDED
    wait_for(lambda: f"Job {queued} is not pending" in worker.output(), timeout=10)
    job = Job.objects.get(id=queued)
    assert job.status == JobStatus.REVOKED and job.started_at is None
    assert kinds(queued) == ["created", "revoked"]


def test_cancel_while_the_worker_is_down_survives_its_restart(make_worker, user_client):
    job_id = create(user_client, "long_running_task", args=[1])  # queued, no worker running
    assert user_client.post(f"/api/v1/jobs/{job_id}/cancel/").json()["status"] == "revoked"
    worker = make_worker()
    wait_for(lambda: job_id in worker.output(), timeout=15, message="the worker to receive the message")
    time.sleep(1)
    job = Job.objects.get(id=job_id)
    assert job.status == JobStatus.REVOKED and job.started_at is None and "started" not in kinds(job_id)


def test_manual_retry_runs_the_same_job_again(worker, user_client):
    job_id = create(user_client, "flaky_task", kwargs={"fail_times": 1}, max_retries=0)
    failed = wait_status(job_id)
    assert failed.status == JobStatus.FAILED and failed.attempts == 0
    response = user_client.post(f"/api/v1/jobs/{job_id}/retry/")
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["attempts"] == 1
    job = wait_status(job_id, JobStatus.SUCCEEDED)
    assert job.id == failed.id and job.attempts == 1 and job.error == ""
    assert kinds(job_id) == ["created", "started", "failed", "retried", "started", "succeeded"]
    first_failure = JobEvent.objects.get(job_id=job_id, kind="failed")
    assert "RuntimeError" in first_failure.data["error"]  # the earlier attempt's error is kept


def test_urgent_job_overtakes_a_backlog_of_normal_jobs(make_worker, user, user_client):
    """Redis: the worker polls high_priority first (queue_order_strategy "priority")."""
    make_worker(concurrency=1)
    assert_urgent_overtakes_a_backlog(user, user_client)


def test_on_rabbitmq_a_worker_of_its_own_runs_urgent_jobs_ahead_of_a_backlog(
    make_worker, user, user_client, rabbitmq_url
):
    """RabbitMQ has no order between the queues a worker consumes (one worker on all three ran an urgent
    job after 4 of 6 queued normal ones): there, high_priority gets a worker of its own
    (docs/RELIABILITY.md, "Priorities on RabbitMQ")."""
    make_worker(concurrency=1, queues="default,low_priority", broker_url=rabbitmq_url)
    make_worker(concurrency=1, queues="high_priority", broker_url=rabbitmq_url)
    assert_urgent_overtakes_a_backlog(user, user_client)


def assert_urgent_overtakes_a_backlog(user, user_client) -> None:
    # Urgent is an operator's right (jobs.submit_urgent); this user has it. The backlog is the same
    # user's, so their fair share must not hold the urgent job back: no running cap here.
    user.user_permissions.add(Permission.objects.get(codename="submit_urgent", content_type__app_label="jobs"))
    user.max_running_jobs = 0
    user.save()
    backlog = [create(user_client, "long_running_task", args=[1], name=f"normal {i}") for i in range(6)]
    wait_status(backlog[0], JobStatus.RUNNING, JobStatus.SUCCEEDED, timeout=20)
    urgent = create(user_client, "long_running_task", args=[0], priority="urgent")
    assert Job.objects.get(id=urgent).queue == "high_priority"
    urgent_job = wait_status(urgent, JobStatus.SUCCEEDED, timeout=30)
    backlog_started_after = (
        Job.objects.filter(id__in=backlog).filter(started_at__gt=urgent_job.started_at).count()
        + Job.objects.filter(id__in=backlog, started_at__isnull=True).count()
    )
    # One normal job may already be reserved by the worker; every other one waits for the urgent job.
    assert backlog_started_after >= 4, backlog_started_after
    for job_id in backlog:
        wait_status(job_id, timeout=30)


def test_scheduled_job_does_not_start_before_run_at(worker, user_client):
    run_at = timezone.now() + timezone.timedelta(seconds=3)
    job_id = create(user_client, "long_running_task", args=[0], run_at=run_at.isoformat())
    job = wait_status(job_id, timeout=20)
    assert job.status == JobStatus.SUCCEEDED and job.started_at >= run_at


def test_urgent_notification_is_sent_through_the_email_backend(make_worker, staff_client, tmp_path):
    make_worker(
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(tmp_path),
            "DEFAULT_FROM_EMAIL": "taskhub@example.com",
        }
    )
    job_id = create(
        staff_client,  # staff may notify anyone (users only themselves)
        "send_notification",
        kwargs={"to": ["ops@example.com"], "subject": "Backup done", "body": "All 3 volumes copied."},
    )
    job = wait_status(job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.queue == "high_priority" and job.priority == "urgent"
    assert job.result == {"sent": 1, "to": ["ops@example.com"], "subject": "Backup done"}
    [message] = [path.read_text() for path in tmp_path.iterdir()]
    assert "Subject: Backup done" in message and "To: ops@example.com" in message
    assert "From: taskhub@example.com" in message and "All 3 volumes copied." in message


def test_hard_time_limit_fails_the_job_and_replaces_the_process(make_worker, user_client):
    worker = make_worker(env={"JOB_MAX_TIME_LIMIT": "2"})  # caps every task's hard limit at 2 s
    job_id = create(user_client, "blocking_sleep", kwargs={"seconds": 30})
    wait_status(job_id, JobStatus.RUNNING, timeout=20)
    pool_before = set(worker.pool_pids())
    job = wait_status(job_id, timeout=15)
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Hard time limit (2 s) exceeded") and job.error_type == "TimeLimitExceeded"
    assert 2 <= (job.finished_at - job.started_at).total_seconds() <= 4  # on time, not at a heartbeat (5 s)
    wait_for(lambda: set(worker.pool_pids()) - pool_before, timeout=10, message="a replacement pool process")
    assert wait_status(create(user_client, "long_running_task", args=[0])).status == JobStatus.SUCCEEDED
