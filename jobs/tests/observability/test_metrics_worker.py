"""Worker processes seen alive, from a real worker: each pool process stamps its heartbeat row,
/metrics counts them and their running jobs, and a stopped worker is no longer counted. Failures
from a real worker are counted by their exception class."""

import socket

import pytest
from django.test import Client

from jobs.models import WorkerHeartbeat
from jobs.tests.observability.test_metrics import scrape, value
from taskhub.testing import wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]

DATA = "jobs.tasks.common_tasks.process_data"
LONG = "jobs.tasks.common_tasks.long_running_task"


def create(client, task: str, **kwargs) -> str:
    response = client.post("/api/v1/jobs/", {"celery_task_name": task, "kwargs": kwargs}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_worker_liveness_and_running_jobs_from_a_real_worker(make_worker, staff_user, staff_client):
    session = Client()
    session.force_login(staff_user)
    # The production heartbeat interval and staleness (the helper shortens them for other tests).
    worker = make_worker(concurrency=2, env={"JOB_HEARTBEAT_INTERVAL": "5", "JOB_STALE_AFTER": "60"})
    hostname = f"{worker.name}@{socket.gethostname()}"

    rows = wait_for(
        lambda: (r := list(WorkerHeartbeat.objects.filter(hostname=hostname))) and len(r) == 2 and r,
        timeout=20,
        message="both pool processes to beat",
    )
    assert sorted(row.pid for row in rows) == sorted(worker.pool_pids())
    assert all(row.queues == ["default", "high_priority", "low_priority"] for row in rows)
    first_seen = {row.pid: row.last_seen for row in rows}
    wait_for(
        lambda: all(r.last_seen > first_seen[r.pid] for r in WorkerHeartbeat.objects.filter(hostname=hostname)),
        timeout=10,
        message="a second heartbeat of each process",
    )

    job_id = create(staff_client, LONG, seconds=4)
    running = wait_status(job_id, "running")
    samples = scrape(session)
    assert value(samples, "taskhub_workers_alive") == 2
    assert value(samples, "taskhub_worker_jobs_running", worker=running.worker, hostname=hostname) == 1
    idle = next(f"{hostname}:{row.pid}" for row in rows if f"{hostname}:{row.pid}" != running.worker)
    assert value(samples, "taskhub_worker_jobs_running", worker=idle, hostname=hostname) == 0

    failed = wait_status(create(staff_client, DATA, records=[1, 2]))
    assert failed.status == "failed" and failed.error_type == "ValueError", failed.error
    assert wait_status(job_id).status == "succeeded"
    samples = scrape(session)
    assert value(samples, "taskhub_job_failures_total", task=DATA, exception="ValueError") == 1
    assert value(samples, "taskhub_job_run_seconds_count", task=LONG) == 1
    assert value(samples, "taskhub_job_run_seconds_sum", task=LONG) == pytest.approx(4, abs=1.5)

    worker.stop()
    assert not WorkerHeartbeat.objects.filter(hostname=hostname).exists()
    assert value(scrape(session), "taskhub_workers_alive") == 0
