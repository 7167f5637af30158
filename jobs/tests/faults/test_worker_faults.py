"""Faults: the broker down at create time, the broker restarted, a worker killed with SIGKILL."""

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.recovery import SweepReport, job_sweep
from jobs.tests.factories import timeline
from taskhub.testing import SHORT_RECOVERY, wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]


@pytest.fixture
def fast_sweep(settings):
    """Shortened recovery in this process's sweeper (the test calls job_sweep itself), to check the
    mechanism without idling for a minute; the workers of the tests that rely on staleness run with
    SHORT_RECOVERY to match. Each has a production-default counterpart in test_faults.py: worker main
    SIGKILL, pool child SIGKILL, broker down during creates, broker restart (volatile)."""
    settings.JOB_STALE_AFTER = float(SHORT_RECOVERY["JOB_STALE_AFTER"])
    settings.JOB_DISPATCH_AFTER = 0
    return settings


def create(client, task: str, **body) -> str:
    response = client.post("/api/v1/jobs/", {"celery_task_name": task, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_broker_down_at_create_then_sent_by_the_sweeper(
    private_redis, use_broker, make_worker, user_client, fast_sweep
):
    use_broker(private_redis.url)
    private_redis.stop()

    started = time.monotonic()
    job_id = create(user_client, "long_running_task", args=[1])
    assert time.monotonic() - started < 5, "create must not hang on a dead broker"
    job = Job.objects.get(id=job_id)
    assert job.status == JobStatus.PENDING and job.dispatched_at is None

    assert job_sweep().dispatched == 0  # still down: nothing sent, nothing lost
    assert Job.objects.get(id=job_id).dispatched_at is None

    private_redis.start()
    report = job_sweep()
    assert report.dispatched == 1
    assert Job.objects.get(id=job_id).dispatched_at is not None
    make_worker(broker_url=private_redis.url)
    assert wait_status(job_id).status == JobStatus.SUCCEEDED
    assert [line.kind for line in timeline(job_id)] == ["created", "dispatched", "started", "succeeded"]


def test_broker_restart_loses_nothing(private_redis, use_broker, make_worker, user_client, fast_sweep):
    use_broker(private_redis.url)
    worker = make_worker(broker_url=private_redis.url, concurrency=1)
    running = create(user_client, "long_running_task", args=[4])
    wait_status(running, JobStatus.RUNNING, timeout=20)
    queued = create(user_client, "long_running_task", args=[1])  # waits behind `running`

    private_redis.stop()  # a Redis without persistence: the queued message is gone
    time.sleep(1)
    private_redis.start()

    assert wait_status(running, timeout=20).status == JobStatus.SUCCEEDED  # the job itself went on
    time.sleep(2)
    assert Job.objects.get(id=queued).status == JobStatus.PENDING  # its message was lost with Redis

    # A minute later (JOB_LOST_AFTER, the production default) its queue is still empty: it is sent again.
    Job.objects.filter(id=queued).update(dispatched_at=timezone.now() - timedelta(seconds=61))
    assert job_sweep().dispatched == 1
    assert wait_status(queued, timeout=30).status == JobStatus.SUCCEEDED
    assert (
        "Connection to broker lost" in worker.output()
        or "Cannot connect" in worker.output()
        or "reconnect" in worker.output().lower()
    )
    later = create(user_client, "long_running_task", args=[0])
    assert wait_status(later, timeout=20).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize("max_retries, outcome", [(1, JobStatus.SUCCEEDED), (0, JobStatus.FAILED)])
def test_worker_killed_mid_job_is_recovered(make_worker, user_client, fast_sweep, max_retries, outcome):
    worker = make_worker(env=SHORT_RECOVERY)  # heartbeats well inside the shortened staleness
    job_id = create(user_client, "long_running_task", args=[3], max_retries=max_retries)
    wait_for(lambda: Job.objects.filter(id=job_id, status="running", progress__gt=0).exists(), timeout=20)
    worker.kill()

    job = Job.objects.get(id=job_id)
    assert job.status == JobStatus.RUNNING  # nobody can know yet
    assert job_sweep().requeued == 0  # heartbeat still fresh
    wait_for(
        lambda: job_sweep() != SweepReport(),
        timeout=15,
        interval=0.5,
        message="the sweeper to notice the stale heartbeat",
    )
    job = Job.objects.get(id=job_id)
    if outcome == JobStatus.FAILED:
        assert job.status == JobStatus.FAILED and job.error.startswith("Worker lost")
        assert JobEvent.objects.filter(job_id=job_id, kind="failed", actor_label="sweeper").exists()
        return
    assert job.status == JobStatus.PENDING and job.attempts == 1
    assert JobEvent.objects.filter(job_id=job_id, kind="requeued").exists()
    make_worker(env=SHORT_RECOVERY)
    job = wait_status(job_id, timeout=30)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.progress == 100
    assert len(timeline(job_id, "started")) == 2
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()


def test_killed_pool_process_is_recovered_without_running_twice(make_worker, user_client, fast_sweep):
    """Only the process running the job dies (OOM killer): Celery re-queues the message, the
    row says the job is still running, so the redelivery is skipped and the sweeper decides."""
    worker = make_worker(concurrency=1, env=SHORT_RECOVERY)
    job_id = create(user_client, "long_running_task", args=[3], max_retries=1)
    wait_for(lambda: Job.objects.filter(id=job_id, status="running", progress__gt=0).exists(), timeout=20)
    for pid in worker.pool_pids():
        os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: f"Job {job_id} is not pending" in worker.output(),
        timeout=15,
        message="the redelivered message to be skipped",
    )
    wait_for(lambda: job_sweep().requeued, timeout=15, interval=0.5)
    job = wait_status(job_id, timeout=30)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1
    assert len(timeline(job_id, "started")) == 2


def test_housekeeping_runs_while_every_job_worker_is_busy(make_worker, user_client, user):
    """The sweeps used to share the job workers' queue: behind hours-long jobs they expired unrun.
    On their own queue and worker they run at once."""
    from jobs.tasks.maintenance_tasks import dispatch_jobs
    from jobs.tests.factories import make

    make_worker(concurrency=1)
    busy = create(user_client, "blocking_sleep", kwargs={"seconds": 30})
    wait_status(busy, JobStatus.RUNNING, timeout=20)
    unsent = make(owner=user, created_at=timezone.now() - timedelta(seconds=60))  # its send never happened
    make_worker(queues="maintenance", concurrency=1)
    dispatch_jobs.apply_async(expires=30)  # as beat sends it: routed to the maintenance queue
    wait_for(lambda: Job.objects.get(id=unsent.id).dispatched_at is not None, timeout=10, message="the dispatch")
    assert Job.objects.get(id=busy).status == JobStatus.RUNNING  # the job worker was busy all along


def test_a_duplicate_delivery_never_starts_a_job_before_its_run_at(worker, user_client):
    """A second message (a sweeper re-send, a redelivery) arriving while the job still waits for its
    run_at (a retry's backoff) is skipped; the job starts once, when due."""
    from jobs.catalog import catalog

    run_at = timezone.now() + timedelta(seconds=6)
    job_id = create(user_client, "long_running_task", args=[0], run_at=run_at.isoformat())
    job = Job.objects.get(id=job_id)
    catalog.get(job.celery_task_name).celery_task.apply_async(  # the duplicate: no countdown
        args=job.args, kwargs=job.kwargs, task_id=job_id, queue=job.queue, headers={"taskhub_attempts": 0}
    )
    time.sleep(3)
    assert Job.objects.get(id=job_id).status == JobStatus.PENDING  # delivered, refused
    job = wait_status(job_id, timeout=30)
    assert job.status == JobStatus.SUCCEEDED
    assert job.started_at >= run_at - timedelta(seconds=2)
    assert len(timeline(job_id, "started")) == 1


def test_a_job_that_fails_before_its_task_runs_ends_failed_with_the_reason(worker, user):
    """A message whose arguments the call cannot take (here a kwarg named self, crafted past the
    catalog) used to leave its job pending forever."""
    from jobs.catalog import catalog
    from jobs.tests.factories import make

    job = make(owner=user)
    task = catalog.get(job.celery_task_name).celery_task
    task.apply_async(kwargs={"self": 1}, task_id=str(job.id), queue=job.queue, headers={"taskhub_attempts": 0})
    job = wait_status(str(job.id), timeout=20)
    assert job.status == JobStatus.FAILED and "TypeError" in job.error and "self" in job.error
    assert JobEvent.objects.get(job_id=job.id, kind="failed").message.startswith("Could not start")


def test_a_message_naming_a_task_the_worker_does_not_know_fails_its_job(worker, user):
    from celery import current_app

    from jobs.tests.factories import make

    job = make(owner=user)
    current_app.send_task(
        "jobs.tasks.not_a_task.evil", task_id=str(job.id), queue=job.queue, headers={"taskhub_attempts": 0}
    )
    job = wait_status(str(job.id), timeout=20)
    assert job.status == JobStatus.FAILED and "no task named 'jobs.tasks.not_a_task.evil'" in job.error


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@pytest.mark.skipif(not FAKETIME.exists(), reason="needs Debian's faketime package (.ci/run installs it)")
@pytest.mark.parametrize("skew", ["-60s", "+90s"])
def test_a_worker_whose_clock_is_off_is_neither_reaped_nor_denied_its_grace(make_worker, user_client, skew):
    """Heartbeats, staleness and the cancel grace period all use the database's clock: a worker
    whose clock is a minute behind (or ahead) keeps its live job, with the production defaults."""
    worker = make_worker(env={"LD_PRELOAD": str(FAKETIME), "FAKETIME": skew})  # production recovery settings
    job_id = create(user_client, "long_running_task", args=[30])
    started = wait_status(job_id, JobStatus.RUNNING, JobStatus.FAILED, timeout=20)
    assert started.status == JobStatus.RUNNING, (started.error, worker.output()[-2000:])
    time.sleep(6)  # at least one heartbeat from the skewed worker
    assert job_sweep().requeued == 0 and job_sweep().failed == 0  # the sweeper's clock is right
    assert Job.objects.get(id=job_id).status == JobStatus.RUNNING
    user_client.post(f"/api/v1/jobs/{job_id}/cancel/")
    wait_status(job_id, JobStatus.REVOKED, timeout=30)  # stops at its next progress call
    assert "progress check" in JobEvent.objects.get(job_id=job_id, kind="revoked").message  # not "Terminated"
    assert "FAKETIME" in worker.env


@pytest.mark.skipif(not FAKETIME.exists(), reason="needs Debian's faketime package (.ci/run installs it)")
@pytest.mark.parametrize("skew", ["-120s", "+120s"])
def test_a_worker_whose_clock_is_off_stamps_its_runs_with_the_databases_clock(make_worker, user_client, skew):
    """A run's ``started_at`` and ``finished_at`` (succeeded or failed), and its ``started`` and
    ``succeeded`` lines, are the database's clock, whatever the worker's: finished_at - started_at is
    the run's real length and the timeline keeps its order. (One job after the other: a fair-share
    wait's ``run_at`` is still the worker's clock, docs/RELIABILITY.md.)"""
    make_worker(env={"LD_PRELOAD": str(FAKETIME), "FAKETIME": skew})
    for task, body, status in (
        ("long_running_task", {"args": [1]}, JobStatus.SUCCEEDED),
        ("flaky_task", {"kwargs": {"fail_times": 1}, "max_retries": 0}, JobStatus.FAILED),
    ):
        job = wait_status(create(user_client, task, **body), status, timeout=30)
        assert job.status == status, job.error
        assert timedelta(0) <= job.finished_at - job.started_at < timedelta(seconds=10), (
            job.started_at,
            job.finished_at,
        )
        lines = {line.kind: line.at for line in timeline(job)}
        assert abs(lines["started"] - job.started_at) < timedelta(seconds=1), (lines, job.started_at)
        if status == JobStatus.SUCCEEDED:
            assert timedelta(seconds=1) <= job.finished_at - job.started_at  # a 1 s job
            assert abs(lines["succeeded"] - job.finished_at) < timedelta(seconds=1), (lines, job.finished_at)
