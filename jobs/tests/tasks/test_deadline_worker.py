"""Deadlines with a real Celery worker process (PostgreSQL + Redis): a message consumed after its
job's deadline expires the job instead of running it; a job with time left runs as usual."""

import time

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobStatus
from jobs.tests.factories import timeline
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]


def test_a_message_consumed_after_its_deadline_expires_the_job_in_the_worker(make_worker, transactional_db):
    client = APIClient()
    client.force_authenticate(user=UserFactory())

    def create(**deadline) -> Job:
        body = {"celery_task_name": "long_running_task", "args": [0], **deadline}
        response = client.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 201, response.content
        return Job.objects.get(id=response.json()["id"])

    # Sent while no worker runs: the messages wait in the broker past the first job's deadline.
    late, in_time, without = create(expires_in=1), create(expires_in=600), create()
    assert late.dispatched_at is not None
    time.sleep(max(0.0, (late.expires_at - late.created_at).total_seconds()) + 0.2)

    make_worker()
    for job in (in_time, without):
        assert wait_status(job.id, timeout=60).status == JobStatus.SUCCEEDED
    row = wait_status(late.id, timeout=30)
    assert (row.status, row.started_at, row.worker, row.attempts) == (JobStatus.EXPIRED, None, "", 0)
    [line] = JobEvent.objects.filter(job_id=late.id, kind="expired")
    assert line.actor_label.startswith("worker ")  # the worker that took the message, not the sweeper
    assert line.message.startswith("expired: not started by ")
    assert not timeline(late, "started")
