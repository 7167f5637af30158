"""Time limits fire in every pool: a job past its hard limit ends ``failed`` within limit + 2 s in the
prefork, solo and threads pools, CPU-bound or blocked in C, and its work stops; the soft limit
reaches the task in each pool (jobs/tasks/limits.py).

First the watchdog's alarm in this process (a run in a thread of its own, as the threads pool runs
it, and in the main thread, as the solo pool does), then real workers of each pool on the tasks of
jobs/tests/timelimit_tasks.py, which declare a 2 s hard limit. Production settings throughout: the
limit is an alarm of its own, so nothing here waits for a heartbeat (5 s).
"""

import dataclasses
import importlib
import sys
import threading
import time

import pytest
from celery.exceptions import TimeLimitExceeded
from django.db import connection

from jobs.catalog import catalog
from jobs.models import Job, JobStatus
from jobs.services.execution import job_start
from jobs.tasks.limits import EXIT_STATUS
from jobs.tasks.run import JobRun
from jobs.tests.factories import make, timeline
from taskhub.celery import app
from taskhub.testing import wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

# Imported by the fixture only: at collection time its tasks would join every other test's catalog.
MODULE = "jobs.tests.timelimit_tasks"
HARD, SOFT = 2, 1  # its limits
FREE_WITHIN = 10.0  # seconds from a stopped task to the next job starting on its worker
TASKS = tuple(f"jobs.tests.timelimit.{name}" for name in ("spin", "sleep", "soft", "stubborn"))


@pytest.fixture
def time_limited_tasks():
    """The test tasks in this process's catalog (the workers import them by TASKHUB_TASK_MODULES)."""
    module = sys.modules.get(MODULE)
    module = importlib.reload(module) if module else importlib.import_module(MODULE)
    assert (module.HARD_LIMIT, module.SOFT_LIMIT) == (HARD, SOFT)
    yield
    for name in TASKS:
        catalog.remove(name)
        app.tasks.unregister(name)


@pytest.fixture
def pool_worker(make_worker, time_limited_tasks):
    def start(pool: str, concurrency: int = 1):
        return make_worker(pool=pool, concurrency=concurrency, env={"TASKHUB_TASK_MODULES": MODULE})

    return start


def create(client, task: str, **kwargs) -> str:
    body = {"name": f"{task} test", "celery_task_name": task, "kwargs": kwargs}
    response = client.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def ran_for(job: Job) -> float:
    return (job.finished_at - job.started_at).total_seconds()


def one_second_run() -> JobRun:
    """A started job whose run (made in the calling thread, as the task base makes it) has a 1 s limit."""
    job = job_start(job_id=make(celery_task_name="blocking_sleep").id, worker="test:1")
    return JobRun(job=job, entry=dataclasses.replace(catalog.get("blocking_sleep"), time_limit=1), worker="test:1")


def spin_until_stopped(run: JobRun, outcome: dict) -> None:
    run.start()
    try:
        while time.monotonic() - run.started < 10:
            pass
    except TimeLimitExceeded:
        outcome["stopped_after"] = time.monotonic() - run.started
    finally:
        run.stop()


def test_the_hard_limit_stops_python_code_in_a_thread_on_time_and_fails_the_job():
    """The threads pool: an exception raised in the run's thread, at the limit, not at a heartbeat."""
    outcome: dict = {}

    def task():
        try:
            spin_until_stopped(one_second_run(), outcome)
        finally:
            connection.close()

    thread = threading.Thread(target=task)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert 1 <= outcome["stopped_after"] < 1.5, outcome
    job = Job.objects.get(status=JobStatus.FAILED)
    assert job.error_type == "TimeLimitExceeded" and job.error.startswith("Hard time limit (1 s) exceeded")
    assert 1 <= (job.finished_at - job.started_at).total_seconds() < 1.5


def test_the_hard_limit_interrupts_a_sleep_in_the_main_thread():
    """The solo pool: a signal handler raises in the main thread; a sleep in C is interrupted."""
    run = one_second_run()
    run.start()
    try:
        with pytest.raises(TimeLimitExceeded):
            time.sleep(10)
        stopped_after = time.monotonic() - run.started
    finally:
        run.stop()
    assert 1 <= stopped_after < 1.5
    assert Job.objects.get(id=run.job_id).status == JobStatus.FAILED


def test_nothing_is_raised_in_a_run_that_stopped_before_its_limit():
    run = one_second_run()
    run.start()
    time.sleep(0.5)
    run.stop()
    time.sleep(1)  # past the limit: no exception here, and the row is the task's to finish
    assert Job.objects.get(id=run.job_id).status == JobStatus.RUNNING


def kinds(job_id) -> list[str]:
    """The job's timeline as kinds in order (its stored and derived lines: ``jobs.timeline``)."""
    return [line.kind for line in timeline(job_id)]


def assert_failed_by_its_hard_limit(job_id) -> Job:
    job = wait_status(job_id, timeout=HARD + 15)
    assert job.status == JobStatus.FAILED, job.error
    print(f"{job.celery_task_name} ended failed {ran_for(job):.2f} s after its start (limit {HARD} s)")  # pytest -rP
    assert HARD <= ran_for(job) <= HARD + 2, ran_for(job)
    assert job.error_type == "TimeLimitExceeded"
    assert job.error.startswith(f"Hard time limit ({HARD} s) exceeded"), job.error
    assert kinds(job_id) == ["created", "started", "failed"]
    return job


# What each pool's worker runs in test_each_pool_...: one job of each of two owners at once where the
# pool runs two (an owner's fair share of a worker process, JOB_FAIR_SHARE, is one job), one after
# the other in solo. A sleep in the threads pool ends its worker: the last test.
PAST_THE_LIMIT = {
    "prefork": ("spin", "sleep"),
    "solo": ("spin", "sleep"),
    "threads": ("spin",),
}


@pytest.mark.worker
@pytest.mark.parametrize("pool", PAST_THE_LIMIT)
def test_each_pool_fails_a_job_past_its_hard_limit_within_2s_stops_it_and_delivers_the_soft_limit(
    pool, pool_worker, user_client, other_client
):
    worker = pool_worker(pool, concurrency=1 if pool == "solo" else 2)
    clients = (user_client, other_client)
    ids = [
        create(client, f"jobs.tests.timelimit.{task}", seconds=30)
        for client, task in zip(clients, PAST_THE_LIMIT[pool], strict=False)
    ]
    for job_id in ids:
        assert_failed_by_its_hard_limit(job_id)
    # The soft limit reaches the task, which cleans up and returns.
    soft = wait_status(create(user_client, "jobs.tests.timelimit.soft", seconds=30), timeout=HARD + 10)
    assert soft.status == JobStatus.SUCCEEDED, soft.error
    # Prefork's clock (Celery's) starts as the pool takes the message, a moment before the task runs.
    assert SOFT - 0.2 <= soft.result["soft_limit_after"] < SOFT + 1, soft.result
    # The work stopped: the worker had a free process or thread for the next job (solo: after each job
    # in turn), long before the 30 s the stopped tasks would still have run, and has for another; it is
    # the same worker process. (10 s, not 2: a prefork pool replaces its killed process, which took
    # 2.8 s on CI's loaded Django 6 leg.)
    ended = sorted(Job.objects.filter(id__in=ids).values_list("finished_at", flat=True))
    free_at = ended[-1] if pool == "solo" else ended[0]
    assert (soft.started_at - free_at).total_seconds() < FREE_WITHIN
    if pool == "solo":
        spin, sleep = (Job.objects.get(id=job_id) for job_id in ids)
        assert (sleep.started_at - spin.finished_at).total_seconds() < FREE_WITHIN
    assert wait_status(create(user_client, "blocking_sleep", seconds=0), timeout=10).status == JobStatus.SUCCEEDED
    assert worker.process.poll() is None


@pytest.mark.worker
def test_threads_worker_blocked_in_c_past_the_limit_ends_itself_and_requeues_its_other_jobs(
    pool_worker, user_client, other_client
):
    """In the threads pool a sleep takes no exception: the job ends failed on time all the same, then
    the worker ends itself (its process manager starts it again) after re-queuing the job it ran
    beside it, which the next worker runs from the start."""
    worker = pool_worker("threads", concurrency=2)
    # Another owner's: an owner's fair share of one worker process (JOB_FAIR_SHARE) is one job.
    other_id = create(other_client, "blocking_sleep", seconds=4)
    wait_status(other_id, JobStatus.RUNNING, timeout=10)
    assert_failed_by_its_hard_limit(create(user_client, "jobs.tests.timelimit.sleep", seconds=30))
    wait_for(lambda: worker.process.poll() is not None, timeout=3, message="the worker to end itself")
    assert worker.process.returncode == EXIT_STATUS
    assert "did not stop 1s after its hard time limit" in worker.output()
    other = Job.objects.get(id=other_id)
    assert (other.status, other.attempts, kinds(other_id)[-1]) == (JobStatus.PENDING, 1, "requeued")
    assert other.max_retries == 0  # re-queued all the same: it was not its fault
    pool_worker("threads", concurrency=2)  # what the process manager does
    other = wait_status(other_id, timeout=15)
    assert other.status == JobStatus.SUCCEEDED and other.attempts == 1


@pytest.mark.worker
def test_solo_worker_whose_job_ignores_its_time_limit_ends_itself_and_loses_no_queued_job(pool_worker, user_client):
    """The exception is caught and the work goes on: the job is failed on time all the same, and the
    solo worker ends itself; the job queued behind it waits in the broker for the restarted worker."""
    worker = pool_worker("solo")
    stubborn_id = create(user_client, "jobs.tests.timelimit.stubborn", seconds=30)
    wait_status(stubborn_id, JobStatus.RUNNING, timeout=10)
    queued_id = create(user_client, "blocking_sleep", seconds=0)
    assert_failed_by_its_hard_limit(stubborn_id)
    wait_for(lambda: worker.process.poll() is not None, timeout=3, message="the worker to end itself")
    assert worker.process.returncode == EXIT_STATUS
    assert Job.objects.get(id=queued_id).status == JobStatus.PENDING
    pool_worker("solo")  # what the process manager does
    assert wait_status(queued_id, timeout=15).status == JobStatus.SUCCEEDED
    assert kinds(queued_id) == ["created", "started", "succeeded"]  # its first attempt, sent once
