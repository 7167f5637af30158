"""The fault suite: real processes (job workers, the maintenance worker, beat) with the production
recovery settings (JOB_HEARTBEAT_INTERVAL 5, JOB_STALE_AFTER 60, JOB_CANCEL_GRACE_SECONDS 30,
JOB_LOST_AFTER 60, JOB_DISPATCH_AFTER 10, sweeps every 10 s), one fault each, on Redis and on RabbitMQ.

Each scenario measures jobs, run, lost (always 0), run twice (0 unless a fault cut a run short: at
least once, said per scenario) and the time from the fault to the last job in its final status, and
writes them for docs/RELIABILITY.md. `make test-faults` runs them in parallel (pytest-xdist): the
waiting is a minute of staleness, not CPU. The longest come first, so that they start first.
"""

import os
import signal
import time

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from taskhub.testing import PRODUCTION_RECOVERY
from taskhub.testing.faults import Observer, Stack, create, create_elsewhere, migrate, outcome

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.timeout(360)]

# The production defaults the processes run with (taskhub.testing.PRODUCTION_RECOVERY), in seconds,
# for the recovery bounds each scenario asserts; SLACK covers process start-up on a busy machine.
STALE = float(PRODUCTION_RECOVERY["JOB_STALE_AFTER"])
LOST = float(PRODUCTION_RECOVERY["JOB_LOST_AFTER"])
DISPATCH = float(PRODUCTION_RECOVERY["JOB_DISPATCH_AFTER"])
SWEEP = float(PRODUCTION_RECOVERY["JOB_SWEEP_INTERVAL"])
SLACK = 15.0


def pid_of(row: dict) -> int:
    return int(row["worker"].rsplit(":", 1)[1])


def test_backlog_with_worker_restart(request, stack, api):
    """A sustained backlog (about 80 s of work for 2 processes) and a worker restarted in the middle:
    every job runs once, and none waiting in the backlog longer than JOB_LOST_AFTER is sent again."""
    worker = stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 40, seconds=4)
    time.sleep(25)
    fault_at = time.time()
    worker.warm_shutdown()
    stack.worker(concurrency=2)
    result = outcome(
        request=request, expected=dict.fromkeys(jobs, "succeeded"), fault_at=fault_at, timeout=240, within=40 * 4 / 2
    )
    assert result.late_sends == 0


def test_two_beats_at_once(request, stack, api, broker):
    """Two beats (and two maintenance workers) run by mistake: a schedule still fires once per slot,
    and two sweepers racing over one dead worker's job re-queue it once."""
    stack.worker(concurrency=2, wait=False)
    stack.housekeeping(beats=2)
    stack.wait_ready()
    body = {"name": "every 5 s", "task": "long_running_task", "kwargs": {"seconds": 0}}
    # Every 5 s: a staff user's schedule (others wait at least JOB_SCHEDULE_MIN_INTERVAL_SECONDS, 60).
    staff_api = APIClient()
    staff_api.force_authenticate(UserFactory(is_staff=True))
    response = staff_api.post(
        "/api/v1/schedules/", {**body, "interval": {"every": 5, "period": "seconds"}}, format="json"
    )
    assert response.status_code == 201, response.content
    schedule = response.json()["id"]
    jobs = create(api, 2, seconds=8)
    [victim, *_] = Observer().running(jobs, 2)
    fault_at = time.time()
    os.kill(pid_of(victim), signal.SIGKILL)
    time.sleep(20)
    assert staff_api.post(f"/api/v1/schedules/{schedule}/disable/").status_code == 200
    fired = [
        job["id"] for job in staff_api.get("/api/v1/jobs/", {"schedule": schedule, "page_size": 200}).json()["results"]
    ]
    result = outcome(
        request=request,
        expected=dict.fromkeys([*jobs, *fired], "succeeded"),
        fault_at=fault_at,
        twice_allowed=1,
        within=STALE + 2 * SWEEP + 8 + SLACK,
        note=f"{len(fired)} scheduled firings, one per slot; the killed job runs again (at least once)",
    )
    assert Observer().rows([victim["id"]])[victim["id"]]["requeued"] == 1
    assert result.jobs >= 2 + 4


def test_postgres_restart(request, broker, private_postgres):
    """PostgreSQL restarts (a fast shutdown: connections closed, 5 s down) while jobs run. A private
    cluster: the shared one serves every other test."""
    database_url = private_postgres.create_database("taskhub_faults")
    migrate(database_url)
    stack = Stack(broker_url=broker.url, database_url=database_url)
    try:
        stack.worker(concurrency=2, wait=False)
        stack.housekeeping()
        stack.wait_ready()
        jobs = create_elsewhere(database_url=database_url, broker_url=broker.url, count=4, seconds=8)
        observer = Observer(database_url)
        observer.running(jobs, 2)
        fault_at = time.time()
        private_postgres.stop()
        time.sleep(5)
        private_postgres.start()
        outcome(
            request=request,
            expected=dict.fromkeys(jobs, "succeeded"),
            fault_at=fault_at,
            observer=observer,
            # Running jobs wait out the outage and go on: none runs again, nobody waits for staleness.
            within=5 + 2 * 8 + SLACK,
        )
    finally:
        stack.close()


def test_broker_restart_volatile(request, stack, api, broker):
    """The broker comes back empty (Redis without persistence; a RabbitMQ that lost its state): the
    queued messages are gone. The sweeper sends them again once JOB_LOST_AFTER passed with their
    queue empty."""
    stack.worker(concurrency=1, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 4, seconds=5)
    Observer().running(jobs, 1)
    fault_at = time.time()
    broker.down()
    time.sleep(3)
    broker.up(lose_messages=True)
    result = outcome(
        request=request,
        expected=dict.fromkeys(jobs, "succeeded"),
        fault_at=fault_at,
        within=LOST + 2 * SWEEP + 3 * 5 + SLACK,
    )
    assert result.late_sends >= 3  # the three queued jobs were sent again


def test_pool_child_sigkill(request, stack, api):
    """The process running a job dies (the OOM killer). Celery re-queues its message, whose redelivery
    is skipped (the row says running); the stale heartbeat has the sweeper re-queue the job once."""
    stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 4, seconds=8)
    [victim, *_] = Observer().running(jobs, 2)
    fault_at = time.time()
    os.kill(pid_of(victim), signal.SIGKILL)
    outcome(
        request=request,
        expected=dict.fromkeys(jobs, "succeeded"),
        fault_at=fault_at,
        twice_allowed=1,
        within=STALE + 2 * SWEEP + 8 + SLACK,
        note="the killed job runs again from the start (at least once)",
    )


def test_worker_main_sigkill(request, stack, api):
    """The whole worker dies (main process and pool) and its process manager starts it again."""
    worker = stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 4, seconds=8)
    Observer().running(jobs, 2)
    fault_at = time.time()
    worker.kill()
    stack.worker(concurrency=2)
    outcome(
        request=request,
        expected=dict.fromkeys(jobs, "succeeded"),
        fault_at=fault_at,
        twice_allowed=2,
        within=STALE + 2 * SWEEP + 8 + SLACK,
        note="the 2 jobs cut short run again from the start (at least once)",
    )


def test_cancel_while_all_workers_are_down(request, stack, api):
    """Every worker dies; the user cancels two running jobs and a queued one; the workers come back.
    The queued job is revoked at once and never starts; the running ones are revoked by the sweeper
    once their heartbeat is stale, and never start again."""
    worker = stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 3, seconds=60)
    running = {row["id"] for row in Observer().running(jobs, 2)}
    worker.kill()
    fault_at = time.time()
    for job_id in jobs:
        response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
        assert response.status_code == 200, response.content
    [queued] = set(jobs) - running
    assert Observer().rows([queued])[queued]["status"] == "revoked"
    stack.worker(concurrency=2)
    result = outcome(
        request=request, expected=dict.fromkeys(jobs, "revoked"), fault_at=fault_at, within=STALE + 2 * SWEEP + SLACK
    )
    rows = Observer().rows(jobs)
    assert rows[queued]["started"] == 0 and all(rows[i]["started"] == 1 for i in running)
    assert result.twice == 0


def test_broker_restart_persistent(request, stack, api, broker):
    """The broker goes away for 3 s and comes back with its messages (Redis with an append-only file;
    RabbitMQ's durable queues)."""
    stack.worker(concurrency=1, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 4, seconds=5)
    Observer().running(jobs, 1)
    fault_at = time.time()
    broker.down()
    time.sleep(3)
    broker.up()
    outcome(request=request, expected=dict.fromkeys(jobs, "succeeded"), fault_at=fault_at, within=4 * 5 + SLACK)


def test_broker_down_during_creates(request, stack, api, broker):
    """Jobs created while the broker is down: the API answers 201 at once, the sweeper sends them
    once the broker is back."""
    stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    broker.down()
    jobs = create(api, 5, seconds=1)
    time.sleep(2)
    broker.up()
    fault_at = time.time()
    result = outcome(
        request=request,
        expected=dict.fromkeys(jobs, "succeeded"),
        fault_at=fault_at,
        within=DISPATCH + 2 * SWEEP + SLACK,
    )
    assert result.late_sends == len(jobs)


def test_web_killed_between_commit_and_send(request, stack, broker):
    """The process that created jobs is SIGKILLed after its commit and before it sent the messages:
    the rows are pending and unsent; the sweeper sends them after JOB_DISPATCH_AFTER."""
    stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create_elsewhere(
        database_url=stack.database_url, broker_url=broker.url, count=3, seconds=1, die_after_commit=True
    )
    fault_at = time.time()
    rows = Observer().rows(jobs)
    assert {row["status"] for row in rows.values()} == {"pending"}
    result = outcome(
        request=request,
        expected=dict.fromkeys(jobs, "succeeded"),
        fault_at=fault_at,
        within=DISPATCH + 2 * SWEEP + SLACK,
    )
    assert result.late_sends == len(jobs)


def test_sigterm_mid_job(request, stack, api):
    """A deploy: SIGTERM to the worker's main process. It finishes the jobs it runs and exits; the jobs
    still queued wait in the broker for the next worker."""
    worker = stack.worker(concurrency=2, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    jobs = create(api, 4, seconds=6)
    Observer().running(jobs, 2)
    fault_at = time.time()
    worker.warm_shutdown()
    stack.worker(concurrency=2)
    outcome(request=request, expected=dict.fromkeys(jobs, "succeeded"), fault_at=fault_at, within=2 * 6 + SLACK)
