"""What a job costs a real worker beyond its own work: no copy of its outcome in Celery's result
backend, and no new database connection per job (Celery's Django fixup would close them around
every task; taskhub keeps them, replacing only old or broken ones)."""

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from jobs.models import Job, JobStatus
from jobs.services.creation import job_create_bulk
from jobs.tests.factories import timeline
from taskhub.testing import wait_for

pytestmark = pytest.mark.worker

JOB = {"celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}


def run_jobs(user, count: int) -> list[Job]:
    jobs = job_create_bulk(owner=user, items=[JOB] * count)
    ids = [job.id for job in jobs]
    wait_for(
        lambda: Job.objects.filter(id__in=ids, status=JobStatus.SUCCEEDED).count() == count,
        timeout=60,
        message=f"{count} jobs to succeed",
    )
    return jobs


def worker_backends() -> set[int]:
    """The PostgreSQL backends connected to the test database, other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_jobs_write_no_result_rows_and_reuse_the_worker_connections(worker, user):
    # Every pool process must take this one user's jobs (connection reuse is what is measured): no
    # running cap for them (by default they would run one of the two pool processes' worth).
    user.max_running_jobs = 0
    user.save()
    run_jobs(user, 5)  # every pool process has connected
    before = worker_backends()
    jobs = run_jobs(user, 30)
    after = worker_backends()
    assert len(after - before) <= 2, (before, after)  # was one new connection per job
    assert not TaskResult.objects.filter(task_id__in=[str(job.id) for job in jobs]).exists()
    job = Job.objects.get(id=jobs[0].id)
    assert job.result["seconds"] == 0 and [line.kind for line in timeline(job)] == [
        "created",
        "started",
        "succeeded",
    ]
