"""Queue control with real Celery workers on PostgreSQL + Redis: a pause holds jobs across a worker
restart and resume releases them; a rate limit holds across two worker processes."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobStatus
from jobs.services.recovery import job_dispatch_due
from jobs.tests.factories import timeline
from taskhub.testing import wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]

# The workers run with the production defaults of everything recovery depends on, not the shortened
# ones WorkerProcess uses for the fault tests.
PRODUCTION = {
    "JOB_HEARTBEAT_INTERVAL": "5.0",
    "JOB_STALE_AFTER": "60",
    "JOB_CANCEL_GRACE_SECONDS": "30",
    "JOB_PROGRESS_MIN_INTERVAL": "0.5",
}


@pytest.fixture
def operator(transactional_db) -> APIClient:
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_queuecontrol"))
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def create(client, seconds: int = 1, priority: str = "normal") -> str:
    body = {"celery_task_name": "long_running_task", "args": [seconds], "priority": priority}
    response = client.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def started_events(job_ids) -> int:
    return sum(len(timeline(job_id, "started")) for job_id in job_ids)


def test_a_pause_holds_jobs_across_a_worker_restart_and_resume_releases_them(make_worker, operator):
    # Sent before the pause, while no worker runs: their messages wait in the broker.
    in_broker = [create(operator) for _ in range(2)]
    assert all(Job.objects.get(id=job_id).dispatched_at for job_id in in_broker)
    assert operator.post("/api/v1/queues/default/pause/", {"reason": "incident"}).status_code == 200
    created_paused = [create(operator) for _ in range(2)]  # never sent
    other_queue = create(operator, priority="low")
    jobs = in_broker + created_paused

    worker = make_worker(env=PRODUCTION)
    wait_status(other_queue, JobStatus.SUCCEEDED)  # the worker runs, only not this queue
    # The worker took the messages of the paused queue, and held their jobs instead of starting them.
    wait_for(lambda: JobEvent.objects.filter(job_id__in=in_broker, kind="held").count() == 2, timeout=30)
    assert Job.objects.filter(id__in=jobs, status=JobStatus.PENDING, dispatched_at__isnull=True).count() == 4

    worker.stop()
    worker = make_worker(env=PRODUCTION)
    job_dispatch_due()  # the sweep on its own schedule: nothing of a paused queue is sent or "lost"
    time.sleep(3)
    assert Job.objects.filter(id__in=jobs, status=JobStatus.PENDING).count() == 4 and started_events(jobs) == 0
    queue = operator.get("/api/v1/queues/default/").json()
    assert (queue["paused"], queue["pending"], queue["unsent"]) == (True, 4, 4)

    resumed = operator.post("/api/v1/queues/default/resume/").json()
    assert resumed["paused"] is False and resumed["sent"] == 4
    for job_id in jobs:
        assert wait_status(job_id, timeout=30).status == JobStatus.SUCCEEDED
    assert started_events(jobs) == 4  # each ran once
    actions = [c["action"] for c in operator.get("/api/v1/queue-changes/?queue=default").json()["results"]]
    assert actions == ["resumed", "paused"]


def test_pausing_a_queue_does_not_touch_its_running_job(worker, operator):
    running = create(operator, seconds=3)
    wait_status(running, JobStatus.RUNNING)
    before = Job.objects.values("worker", "started_at", "attempts").get(id=running)
    operator.post("/api/v1/queues/default/pause/")
    job = wait_status(running, timeout=30)
    assert job.status == JobStatus.SUCCEEDED and job.progress == 100
    assert {"worker": job.worker, "started_at": job.started_at, "attempts": job.attempts} == before
    assert [line.kind for line in timeline(running)] == [
        "created",
        "started",
        "succeeded",
    ]


def test_a_rate_limit_of_5_per_10_seconds_holds_with_two_worker_processes(make_worker, operator):
    response = operator.patch("/api/v1/queues/default/", {"rate_limit": {"limit": 5, "period": 10}}, format="json")
    assert response.status_code == 200, response.content
    make_worker(env=PRODUCTION, concurrency=2)
    make_worker(env=PRODUCTION, concurrency=2)
    jobs = [create(operator, seconds=0) for _ in range(12)]

    # The sweeper (beat's dispatch task, every JOB_SWEEP_INTERVAL) sends deferred jobs as they come due.
    deadline, last_sweep = time.monotonic() + 120, 0.0
    while Job.objects.filter(id__in=jobs, status=JobStatus.SUCCEEDED).count() < len(jobs):
        assert time.monotonic() < deadline, list(Job.objects.filter(id__in=jobs).values("status", "run_at"))
        if time.monotonic() - last_sweep >= settings.JOB_SWEEP_INTERVAL:
            job_dispatch_due()
            last_sweep = time.monotonic()
        time.sleep(0.2)

    starts = sorted(Job.objects.filter(id__in=jobs).values_list("started_at", flat=True))
    window = timedelta(seconds=10)
    # No 10-second window, wherever it begins, holds more than 5 starts ...
    assert max(sum(1 for other in starts if start <= other < start + window) for start in starts) == 5
    # ... and the 12 jobs took at least two full periods: 5, 5, then 2.
    assert starts[-1] - starts[0] >= 2 * window
    # Nothing ran twice, nothing was lost; the deferred ones came back spread, not in a loop.
    assert started_events(jobs) == 12 and Job.objects.filter(id__in=jobs, attempts=0).count() == 12
    workers = set(Job.objects.filter(id__in=jobs).values_list("worker", flat=True))
    assert len({name.split("@")[0] for name in workers}) == 2, workers
    deferrals = JobEvent.objects.filter(job_id__in=jobs, kind="rate_limited").count()
    assert 7 <= deferrals <= 14, deferrals
