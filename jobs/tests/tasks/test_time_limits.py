"""Time limits fire in every pool: a job past its hard limit ends ``failed`` within limit + 2 s in the
prefork, solo and threads pools, CPU-bound or blocked in C, and its work stops; the soft limit
reaches the task in each pool (jobs/tasks/limits.py).

Real workers, the production recovery settings; the tasks (jobs/tests/timelimit_tasks.py) declare a
2 s hard limit. Nothing here depends on the heartbeat interval (5 s): the limit is an alarm of its own.
"""

import importlib
import sys
import time

import pytest

from jobs.catalog import catalog
from jobs.models import Job, JobEvent, JobStatus
from jobs.tasks.limits import EXIT_STATUS
from taskhub.celery import app
from taskhub.testing import wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(90)]

# Imported by the fixture only: at collection time its tasks would join every other test's catalog.
MODULE = "jobs.tests.timelimit_tasks"
HARD, SOFT = 2, 1  # its limits
TASKS = ("jobs.tests.timelimit.spin", "jobs.tests.timelimit.sleep", "jobs.tests.timelimit.soft")


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


@pytest.mark.parametrize("task", ["spin", "sleep"])
@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_hard_limit_fails_the_job_within_limit_plus_2s_and_stops_its_work(pool, task, pool_worker, user_client):
    worker = pool_worker(pool)
    job_id = create(user_client, f"jobs.tests.timelimit.{task}", seconds=30)
    job = wait_status(job_id, timeout=HARD + 15)
    assert job.status == JobStatus.FAILED, job.error
    assert HARD <= ran_for(job) <= HARD + 2, ran_for(job)
    assert job.error_type == "TimeLimitExceeded"
    assert job.error.startswith(f"Hard time limit ({HARD} s) exceeded"), job.error
    assert list(JobEvent.objects.filter(job_id=job_id).values_list("kind", flat=True).order_by("at", "id")) == [
        "created",
        "started",
        "failed",
    ]
    if pool == "threads" and task == "sleep":
        # A thread blocked in C takes no exception: the worker ends itself, its manager restarts it.
        wait_for(lambda: worker.process.poll() is not None, timeout=HARD + 2, message="the worker to exit")
        assert worker.process.returncode == EXIT_STATUS
        assert "did not stop 1s after its hard time limit" in worker.output()
        return
    # The work stopped: the same worker (its one process or thread) is free for the next job at once.
    started = time.monotonic()
    follow_up = wait_status(create(user_client, "blocking_sleep", seconds=0), timeout=10)
    assert follow_up.status == JobStatus.SUCCEEDED and time.monotonic() - started < 10
    assert worker.process.poll() is None


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_soft_limit_reaches_the_task_in_every_pool(pool, pool_worker, user_client):
    pool_worker(pool)
    job = wait_status(create(user_client, "jobs.tests.timelimit.soft", seconds=30), timeout=HARD + 15)
    assert job.status == JobStatus.SUCCEEDED, job.error
    # Prefork's clock (Celery's) starts as the pool takes the message, a moment before the task runs.
    assert SOFT - 0.2 <= job.result["soft_limit_after"] < SOFT + 1, job.result
