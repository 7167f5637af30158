"""Concurrency keys with real worker processes (issue 21): limit 1 never overlaps while another key
runs beside it, limit 3 never runs more than 3, and a SIGKILLed worker's keyed job frees its key
once recovery has finished it. Production defaults, but for the SIGKILL test's staleness (below).
The service-level tests are jobs/tests/services/test_concurrency.py."""

from datetime import datetime
from itertools import pairwise

import pytest
from django.db.models import Count

from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.services.recovery import job_sweep
from taskhub.testing import SHORT_RECOVERY, wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]


def bulk(client, *items: dict) -> list[str]:
    response = client.post("/api/v1/jobs/bulk/", {"jobs": list(items)}, format="json")
    assert response.status_code == 201, response.content
    return [job["id"] for job in response.json()]


def sleeping(seconds: float, key: str, limit: int) -> dict:
    return {
        "celery_task_name": "blocking_sleep",
        "kwargs": {"seconds": seconds},
        "concurrency": {"key": key, "limit": limit},
    }


def all_done(ids: list[str], timeout: float) -> list[Job]:
    wait_for(
        lambda: Job.objects.filter(id__in=ids, status=JobStatus.SUCCEEDED).count() == len(ids),
        timeout=timeout,
        interval=0.2,
        message=f"{len(ids)} jobs to succeed",
    )
    return list(Job.objects.filter(id__in=ids).order_by("started_at"))


def most_at_once(jobs: list[Job]) -> int:
    """The most jobs running at one moment, from their started_at / finished_at."""
    moments: list[tuple[datetime, int]] = []
    for job in jobs:
        moments += [(job.started_at, 1), (job.finished_at, -1)]
    running = most = 0
    for _, step in sorted(moments):  # at a tie the end (-1) comes first: back to back is no overlap
        running += step
        most = max(most, running)
    return most


def test_limit_1_never_overlaps_while_another_key_runs_beside_it(make_worker, staff_client):
    """Two worker processes of concurrency 2; staff own the jobs (exempt from fair shares, so only
    the keys decide)."""
    make_worker(concurrency=2)
    make_worker(concurrency=2)
    one = bulk(staff_client, *(sleeping(0.2, "tenant-1", 1) for _ in range(20)))
    other = bulk(staff_client, *(sleeping(1.0, "tenant-2", 2) for _ in range(4)))

    ones, others = all_done(one, timeout=60), all_done(other, timeout=30)
    assert most_at_once(ones) == 1
    for before, after in pairwise(ones):
        assert after.started_at >= before.finished_at, "two jobs of tenant-1 overlapped"
    assert most_at_once(others) == 2
    # The other key ran beside the first: some job of tenant-2 overlaps some job of tenant-1.
    assert any(o.started_at < j.finished_at and j.started_at < o.finished_at for o in others for j in ones)
    # Waiting was neither a failure nor a retry, and each waiting job has at most one line.
    assert {job.attempts for job in ones + others} == {0}
    waits = JobEvent.objects.filter(job_id__in=one, kind=JobEventKind.CONCURRENCY)
    assert waits.count() > 0
    per_job = waits.values("job_id").annotate(lines=Count("id")).values_list("lines", flat=True)
    assert set(per_job) == {1}, "a wait writes one line, not one per refused delivery"
    # A limit-1 key is not bound by a polling delay: the release sends the next job at each finish.
    gaps = [(after.started_at - before.finished_at).total_seconds() for before, after in pairwise(ones)]
    assert sorted(gaps)[len(gaps) // 2] < 0.5, gaps
    assert all(line.message == "Waiting: concurrency key tenant-1 at its limit 1." for line in waits)
    assert not Job.objects.filter(concurrency_waiting_since__isnull=False).exists()


def test_limit_3_never_runs_more_than_3_of_6_processes(make_worker, staff_client):
    make_worker(concurrency=3)
    make_worker(concurrency=3)
    ids = bulk(staff_client, *(sleeping(0.5, "three", 3) for _ in range(12)))
    assert most_at_once(all_done(ids, timeout=60)) == 3


def test_sigkill_of_the_worker_running_a_keyed_job_does_not_leave_its_key_stuck(make_worker, staff_client, settings):
    """The staleness is shortened (the workers' SHORT_RECOVERY and this process's sweeper, as
    jobs/tests/faults/test_worker_faults.py does): the mechanism is the same at the default 60 s,
    only slower (the production-default counterpart: jobs/tests/faults/test_key_faults.py). The key
    frees with the recovered job's own transition, not a timeout."""
    settings.JOB_STALE_AFTER = float(SHORT_RECOVERY["JOB_STALE_AFTER"])
    worker = make_worker(concurrency=2, env=SHORT_RECOVERY)
    [held] = bulk(staff_client, sleeping(60, "tenant-9", 1))
    wait_status(held, JobStatus.RUNNING, timeout=20)
    [waiting] = bulk(staff_client, sleeping(0.1, "tenant-9", 1))
    wait_for(
        lambda: Job.objects.filter(id=waiting, concurrency_waiting_since__isnull=False, dispatched_at=None).exists(),
        timeout=20,
        message="the second job of the key to wait",
    )
    worker.kill()

    wait_for(lambda: job_sweep().failed, timeout=20, interval=0.5, message="the sweeper to recover the dead job")
    assert Job.objects.get(id=held).status == JobStatus.FAILED
    # The recovery's own transition released the waiting job: it was sent, and a new worker runs it.
    assert Job.objects.get(id=waiting).dispatched_at is not None
    make_worker(concurrency=2, env=SHORT_RECOVERY)
    assert wait_status(waiting, timeout=30).status == JobStatus.SUCCEEDED
    [after] = bulk(staff_client, sleeping(0.1, "tenant-9", 1))
    assert wait_status(after, timeout=30).status == JobStatus.SUCCEEDED
