"""Unique jobs with real worker processes (issue 21's must-show): debounce's start, keep_latest's one
follow-up, cancel_running's durable cancel, and no stuck key after a worker is SIGKILLed."""

import time
from datetime import timedelta

import pytest

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.recovery import SweepReport, job_sweep
from jobs.tests.factories import LONG_RUNNING_TASK, timeline
from taskhub.testing import SHORT_RECOVERY, wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]


def create(client, unique: dict, status: int | None = None, **body) -> dict:
    body = {"celery_task_name": LONG_RUNNING_TASK, "unique": unique, **body}
    response = client.post("/api/v1/jobs/", body, format="json")
    assert response.status_code in ((200, 201) if status is None else (status,)), response.content
    return response.json()


def test_debounce_runs_once_with_the_last_request_after_the_quiet_period(worker, user_client):
    rule = {"key": "search-index", "policy": "debounce", "period": 2, "max_wait": 5}
    answers = []
    for number in range(10):
        sent_at = time.time()  # the server creates after this: its clock is this host's
        answers.append(create(user_client, rule, args=[0], kwargs={"edit": str(number)}))
        time.sleep(0.2)
    assert answers[0]["dedupe_outcome"] is None
    assert {answer["dedupe_outcome"] for answer in answers[1:]} == {"debounced"}
    assert len({answer["id"] for answer in answers}) == 1
    job = wait_status(answers[0]["id"], timeout=30)
    assert job.status == JobStatus.SUCCEEDED and job.result["labels"] == {"edit": "9"}
    # Started at its run_at, never early, and run_at is 2 s after the 10th request (sent after sent_at).
    assert job.started_at >= job.run_at and job.run_at.timestamp() >= sent_at + 2
    # ... and not later than 5 s after the first request (the job's creation), plus the worker's pick-up.
    assert job.run_at <= job.created_at + timedelta(seconds=5)
    assert job.started_at <= job.created_at + timedelta(seconds=5.5)
    assert len(timeline(job, "started")) == 1
    assert Job.objects.count() == 1


def test_debounce_never_starts_later_than_max_wait(worker, user_client):
    """Requests keep coming, 0.2 s apart, well inside the 2 s quiet period, until the job runs: without
    the cap it would never start while they do. With it, it starts at max_wait after its creation
    (whatever the machine's load: no deadline on the worker's pick-up is asserted)."""
    rule = {"key": "capped", "policy": "debounce", "period": 2, "max_wait": 3}
    first = create(user_client, rule, 201, args=[0])
    debounced_at = []  # when each debounced request was sent (the server's "now" is later)
    deadline = time.monotonic() + 30
    while not Job.objects.filter(id=first["id"], status__in=["running", "succeeded"]).exists():
        assert time.monotonic() < deadline, f"not started after {len(debounced_at)} requests in 30 s"
        sent_at = time.time()
        answer = create(user_client, rule, args=[0], kwargs={"edit": str(len(debounced_at))})
        if answer["dedupe_outcome"] == "debounced":
            assert answer["id"] == first["id"]
            debounced_at.append(sent_at)
        time.sleep(0.2)
    job = wait_status(first["id"], timeout=30)
    assert job.run_at == job.created_at + timedelta(seconds=3)  # the cap, exactly
    assert job.started_at >= job.run_at  # never early
    # The last request it took came less than the quiet period before its start: debounce alone
    # would have moved the start past it.
    assert debounced_at and debounced_at[-1] + 2 > job.run_at.timestamp()


def test_keep_latest_one_follow_up_with_the_tenth_request(worker, user_client):
    rule = {"key": "report", "policy": "keep_latest"}
    first = create(user_client, rule, 201, args=[5])
    wait_status(first["id"], JobStatus.RUNNING, timeout=20)
    for number in range(10):
        answer = create(user_client, rule, 200, args=[0], kwargs={"version": str(number)})
        assert (answer["id"], answer["dedupe_outcome"]) == (first["id"], "follow_up_queued")
    assert wait_status(first["id"], timeout=30).status == JobStatus.SUCCEEDED
    wait_for(lambda: Job.objects.count() == 2, timeout=10, message="the follow-up")
    follow_up = Job.objects.exclude(id=first["id"]).get()
    assert follow_up.kwargs == {"version": "9"} and follow_up.unique_key == "report"
    assert wait_status(follow_up.id, timeout=30).status == JobStatus.SUCCEEDED
    time.sleep(1)
    assert Job.objects.count() == 2  # nothing arrived while the follow-up ran: no second follow-up


def test_cancel_running_revokes_the_running_job_and_runs_the_new_one(worker, user_client, user):
    rule = {"key": "deploy", "policy": "cancel_running"}
    first = create(user_client, rule, 201, args=[30])
    wait_for(lambda: Job.objects.filter(id=first["id"], status="running", progress__gt=0).exists(), timeout=20)
    second = create(user_client, rule, 201, args=[0])
    assert second["dedupe_outcome"] == "cancelled_running" and second["id"] != first["id"]
    assert wait_status(first["id"], timeout=30).status == JobStatus.REVOKED
    line = JobEvent.objects.get(job_id=first["id"], kind="cancel_requested")
    assert line.actor == user and "newer job of its unique key (cancel_running)" in line.message
    assert wait_status(second["id"], timeout=30).status == JobStatus.SUCCEEDED


@pytest.fixture
def fast_sweep(settings):
    """The sweeper's staleness shortened as in the worker fault tests (test_worker_faults.py's
    fast_sweep): the release itself is the recovery's transition, whatever its timing. The
    production-default counterpart is jobs/tests/faults/test_key_faults.py."""
    settings.JOB_STALE_AFTER = float(SHORT_RECOVERY["JOB_STALE_AFTER"])
    settings.JOB_DISPATCH_AFTER = 0
    return settings


def test_a_sigkilled_workers_keyed_jobs_release_their_keys_once_recovered(make_worker, user, user_client, fast_sweep):
    user.max_running_jobs = 0  # no running share: both jobs run at once on the one worker
    user.save(update_fields=["max_running_jobs"])
    worker = make_worker(env=SHORT_RECOVERY, concurrency=2)
    rules = [{"key": "a", "policy": "reject"}, {"key": "b", "policy": "keep_latest"}]
    held = [create(user_client, rule, 201, args=[30], max_retries=0) for rule in rules]
    for job in held:
        wait_for(lambda job=job: Job.objects.filter(id=job["id"], status="running").exists(), timeout=20)
    assert create(user_client, rules[0], 200)["id"] == held[0]["id"]  # held while it runs
    worker.kill()
    wait_for(
        lambda: job_sweep() == SweepReport() and not Job.objects.filter(status=JobStatus.RUNNING).exists(),
        timeout=20,
        interval=0.5,
        message="the recovery of both jobs",
    )
    assert set(Job.objects.filter(id__in=[job["id"] for job in held]).values_list("status", flat=True)) == {"failed"}
    for rule in rules:
        fresh = create(user_client, rule, 201, args=[0])
        assert fresh["id"] not in {job["id"] for job in held}
    assert Job.objects.filter(unique_held=True).count() == 2
