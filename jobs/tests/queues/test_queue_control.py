"""Queue control where jobs are sent and started (jobs.services.gates), without a worker: a paused
queue's jobs are not sent, not started and not taken for lost; a rate limit defers a start."""

from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobStatus, RateLimit
from jobs.queues.services import queue_pause, queue_resume, rate_limit_clear, rate_limit_set
from jobs.services import gates
from jobs.services.creation import job_create
from jobs.services.execution import job_start
from jobs.services.recovery import job_dispatch_due, job_sweep
from jobs.tests.factories import LONG_RUNNING_TASK, kinds, make, snapshot

pytestmark = pytest.mark.django_db


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def pause(queue="default"):
    assert queue_pause(queue=queue, by=None, source="command")


def limit(name="default", n=2, period=10, scope="queue"):
    return rate_limit_set(scope=scope, name=name, limit=n, period=period, by=None, source="command")


@pytest.fixture
def empty_queues():
    with current_app.connection_for_write() as conn:
        for queue in settings.JOB_QUEUES:
            conn.default_channel.queue_declare(queue=queue, durable=True)
            conn.default_channel.queue_purge(queue)
    yield
    with current_app.connection_for_write() as conn:
        for queue in settings.JOB_QUEUES:
            conn.default_channel.queue_purge(queue)


# --- pause ---------------------------------------------------------------------------------------


def test_a_job_created_in_a_paused_queue_is_not_sent(published, django_capture_on_commit_callbacks):
    pause("default")
    owner = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        held = job_create(owner=owner, celery_task_name="long_running_task", args=[1])
        other = job_create(owner=owner, celery_task_name="long_running_task", args=[1], priority="low")
    assert [m["id"] for m in published] == [str(other.id)]
    assert Job.objects.get(id=held.id).dispatched_at is None and held.status == JobStatus.PENDING


def test_a_message_of_a_paused_queue_is_refused_and_its_job_held_once():
    job = make(dispatched_at=ago(5))
    pause("default")
    assert job_start(job_id=job.id, worker="w:1", attempts=0) is None
    row = Job.objects.get(id=job.id)
    assert (row.status, row.dispatched_at, row.started_at) == (JobStatus.PENDING, None, None)
    assert kinds(job) == ["created", "held"]
    assert "paused" in JobEvent.objects.get(job_id=job.id).message
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # a duplicate: nothing more
    assert kinds(job) == ["created", "held"]


def test_the_sweep_neither_sends_nor_takes_for_lost_a_paused_queues_jobs(empty_queues, published):
    pause("default")
    unsent = make(created_at=ago(60))
    sent_long_ago = make(created_at=ago(120), dispatched_at=ago(61))  # would be "lost" (queue empty)
    other = make(created_at=ago(60), priority="low")
    assert job_sweep().dispatched == 1
    assert [m["id"] for m in published] == [str(other.id)]
    assert snapshot(unsent)["dispatched_at"] is None and kinds(unsent) == kinds(sent_long_ago) == ["created"]


def test_resume_sends_the_held_jobs_at_once_however_recent(published):
    pause("default")
    fresh = make()  # created now: the sweep would wait JOB_DISPATCH_AFTER for it
    held = make(created_at=ago(600))
    running = make("running")
    assert queue_resume(queue="default", by=None, source="command") == 2
    assert {m["id"] for m in published} == {str(fresh.id), str(held.id)}
    assert "resumed" in JobEvent.objects.get(job_id=fresh.id, kind="dispatched").message
    assert snapshot(running)["status"] == JobStatus.RUNNING and kinds(running) == ["created", "started"]
    assert queue_resume(queue="default", by=None, source="command") is None  # not paused: nothing


def test_a_job_re_queued_while_its_queue_is_paused_waits_unsent(published, django_capture_on_commit_callbacks):
    from jobs.services.execution import job_fail

    job = make("running", max_retries=1)
    pause("default")
    with django_capture_on_commit_callbacks(execute=True):
        job_fail(job_id=job.id, attempts=0, error="boom", worker="w:1")
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.PENDING and row.dispatched_at is None and published == []


# --- rate limits ---------------------------------------------------------------------------------


def test_a_start_over_the_limit_is_deferred_to_when_a_slot_frees(published, django_capture_on_commit_callbacks):
    limit("default", n=2, period=10)
    jobs = [make(dispatched_at=ago(1)) for _ in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        results = [job_start(job_id=job.id, worker="w:1", attempts=0) for job in jobs]
    assert [r is not None for r in results] == [True, True, False, False]
    first, _second, third, fourth = (Job.objects.get(id=job.id) for job in jobs)
    # The first refused job waits for the first slot to free; the next one period / limit after it.
    assert third.run_at == first.started_at + timedelta(seconds=10)
    assert fourth.run_at == third.run_at + timedelta(seconds=5)
    for job in (third, fourth):
        assert (job.status, job.started_at) == (JobStatus.PENDING, None)
        assert kinds(job) == ["created", "rate_limited"]
        assert JobEvent.objects.get(job_id=job.id).data == {
            "scope": "queue",
            "name": "default",
            "limit": 2,
            "period": 10,
        }
    # Due within the sweep interval: sent with a countdown now; the later one is the sweeper's.
    assert [m["id"] for m in published] == [str(third.id)]
    assert third.dispatched_at is not None and fourth.dispatched_at is None


def test_a_refused_start_gives_its_slot_back_to_no_one():
    """A job that matched no row (cancelled, a duplicate) takes no slot: the start rolls back."""
    limit("default", n=1, period=60)
    gone = make("revoked")
    assert job_start(job_id=gone.id, worker="w:1") is None
    assert job_start(job_id=make().id, worker="w:1") is not None


def test_a_task_limit_and_a_queue_limit_both_apply():
    limit(LONG_RUNNING_TASK, n=1, period=60, scope="task")
    assert job_start(job_id=make().id, worker="w:1") is not None
    assert job_start(job_id=make(priority="low").id, worker="w:1") is None  # same task, other queue
    other_task = make(celery_task_name="jobs.tasks.common_tasks.process_data")
    assert job_start(job_id=other_task.id, worker="w:1") is not None


def test_a_cleared_limit_no_longer_holds_back():
    limit("default", n=1, period=60)
    assert job_start(job_id=make().id, worker="w:1") is not None
    assert job_start(job_id=make().id, worker="w:1") is None
    rate_limit_clear(scope="queue", name="default", by=None, source="command")
    assert job_start(job_id=make().id, worker="w:1") is not None


def test_a_limit_that_vanished_under_a_stale_cache_sends_the_job_again(published, django_capture_on_commit_callbacks):
    limit("default", n=1, period=60)
    assert job_start(job_id=make().id, worker="w:1") is not None
    gates._cache.get()  # this process still believes in the limit ...
    RateLimit.objects.all().delete()  # ... that another process cleared
    gates._cache._loaded_at = float("inf")
    try:
        job = make()
        with django_capture_on_commit_callbacks(execute=True):
            assert job_start(job_id=job.id, worker="w:1") is None
    finally:
        gates.forget_limits()
    assert "removed" in JobEvent.objects.get(job_id=job.id, kind="rate_limited").message
    assert [m["id"] for m in published] == [str(job.id)]


def test_the_sweeper_sends_a_deferred_job_when_it_is_due(published):
    deferred = make(run_at=timezone.now() + timedelta(seconds=5), created_at=ago(1))
    later = make(run_at=timezone.now() + timedelta(seconds=60), created_at=ago(1))
    assert job_dispatch_due() == 1
    assert [m["id"] for m in published] == [str(deferred.id)]
    assert snapshot(later)["dispatched_at"] is None


def test_with_no_limit_and_no_pause_a_start_costs_no_statement_of_queue_control():
    """The controls are read inside the start's UPDATE (pause) and from a per-process cache (limits)."""
    gates._cache.get()  # warm, as it is on a worker between two refreshes
    gates.workers_alive_for("default")  # the workers alive (fair shares): cached likewise
    job = make()
    with CaptureQueriesContext(connection) as queries:
        assert job_start(job_id=job.id, worker="w:1") is not None
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    # The start itself, then its owner's running count (fair shares): no statement of queue control.
    assert [s for s in statements if s in ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")] == ["WITH", "SELECT"]
