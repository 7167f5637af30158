"""The sweeper (jobs.services.recovery): unsent jobs are sent, jobs of dead workers recovered."""

from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import (
    RunState,
    job_update_progress,
)
from jobs.services.recovery import SweepReport, job_sweep
from jobs.tests.factories import LONG_RUNNING_TASK, kinds, make, snapshot

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


# --- the sweeper ---------------------------------------------------------------------------------


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_sweep_sends_pending_jobs_whose_message_never_left(settings, published):
    settings.JOB_DISPATCH_AFTER = 10
    unsent = make(created_at=ago(60))
    fresh = make(created_at=ago(1))  # its own after-commit send may still be on its way
    later = make(created_at=ago(60), run_at=timezone.now() + timedelta(hours=1))
    sent = make(created_at=ago(60), dispatched_at=ago(50))
    report = job_sweep()
    assert report.dispatched == 1
    assert [m["id"] for m in published] == [str(unsent.id)]
    assert Job.objects.get(id=unsent.id).dispatched_at is not None
    assert kinds(unsent) == ["created", "dispatched"]
    for job in (fresh, later, sent):
        assert Job.objects.get(id=job.id).dispatched_at == job.dispatched_at
        assert kinds(job) == ["created"]


def test_sweep_sends_a_scheduled_job_when_it_is_due(published):
    due = make(created_at=ago(3600), run_at=timezone.now() + timedelta(seconds=1))
    job_sweep()
    assert [m["id"] for m in published] == [str(due.id)]


@pytest.fixture(params=["redis", "rabbitmq"])
def empty_queues(request):
    """The job queues of the test broker (Redis, or a RabbitMQ virtual host: the sweeper reads queue
    sizes by a passive queue_declare on both), emptied: what a broker restarted without persistence holds."""
    if request.param == "rabbitmq":
        request.getfixturevalue("rabbitmq_url")
    with current_app.connection_for_write() as connection:
        for queue in current_app.conf.task_queues:  # declared as Celery declares them (AMQP compares)
            queue(connection.default_channel).declare()
            connection.default_channel.queue_purge(queue.name)
    yield
    with current_app.connection_for_write() as connection:
        for queue in settings.JOB_QUEUES:
            connection.default_channel.queue_purge(queue)


def test_sweep_sends_again_a_job_whose_message_was_lost(empty_queues, published):
    """Production default JOB_LOST_AFTER (60 s): sent 61 s ago, due, never started, queue empty."""
    lost = make(created_at=ago(62), dispatched_at=ago(61))
    recent = make(created_at=ago(31), dispatched_at=ago(30))  # may still be on its way to a worker
    later = make(created_at=ago(120), dispatched_at=ago(120), run_at=ago(-30))  # not due yet
    assert job_sweep().dispatched == 1
    assert [m["id"] for m in published] == [str(lost.id)]
    assert Job.objects.get(id=lost.id).dispatched_at > ago(5)
    assert "its message was lost" in JobEvent.objects.get(job_id=lost.id, kind="dispatched").message
    assert kinds(recent) == kinds(later) == ["created"]


def test_sweep_never_resends_jobs_waiting_in_a_backlog(empty_queues, published, django_capture_on_commit_callbacks):
    """An hour-old job behind a backlog still has its message in the queue: it is not sent again."""
    with django_capture_on_commit_callbacks(execute=True):
        backlog = [job_create(owner=UserFactory(), celery_task_name=LONG, args=[1]) for _ in range(3)]
    Job.objects.filter(id__in=[job.id for job in backlog]).update(dispatched_at=ago(3600), created_at=ago(3600))
    published.clear()
    assert job_sweep().dispatched == 0 and published == []


def test_sweep_with_the_broker_down_decides_nothing_about_lost_messages(private_redis, use_broker, published):
    use_broker(private_redis.url)
    private_redis.stop()
    make(created_at=ago(62), dispatched_at=ago(61))
    assert job_sweep().dispatched == 0 and published == []


def test_sweep_requeues_a_running_job_whose_worker_died(settings, published, django_capture_on_commit_callbacks):
    settings.JOB_STALE_AFTER = 60
    job = make("running", max_retries=1, heartbeat_at=ago(120), worker="dead:1")
    with django_capture_on_commit_callbacks(execute=True):
        report = job_sweep()
    assert report.requeued == 1
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.error.startswith("Worker lost")
    assert kinds(job) == ["created", "started", "requeued"]  # the lost run's lines written before the re-queue
    assert [m["id"] for m in published] == [str(job.id)]
    # The dead worker's late writes can no longer touch the new attempt.
    assert job_update_progress(job_id=job.id, progress=99, attempts=0) is RunState.GONE


def test_sweep_fails_a_lost_job_without_retries_left(settings):
    settings.JOB_STALE_AFTER = 60
    job = make("running", max_retries=1, attempts=1, heartbeat_at=ago(120))
    assert job_sweep().failed == 1
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.FAILED
    assert row.error.startswith("Worker lost")
    assert row.finished_at is not None
    assert kinds(job) == ["created", "started", "failed"]


def test_sweep_revokes_a_lost_job_that_was_being_cancelled(settings):
    settings.JOB_STALE_AFTER = 60
    job = make("running", max_retries=3, heartbeat_at=ago(120), cancel_requested_at=ago(100))
    assert job_sweep().revoked == 1
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.REVOKED
    assert row.finished_at is not None
    assert kinds(job) == ["created", "started", "revoked"]


def test_sweep_leaves_live_jobs_alone(settings, published):
    settings.JOB_STALE_AFTER = 60
    live = make("running", max_retries=1, heartbeat_at=ago(5))
    before = snapshot(live)
    assert job_sweep() == SweepReport()
    assert snapshot(live) == before
    assert published == []


def test_a_job_whose_task_left_the_catalog_fails_and_recovery_goes_on(settings, published):
    """One pending job of a task a deploy removed used to make every sweep raise before the
    stale-heartbeat recovery: now it fails with the reason and everything else is recovered."""
    gone = make(celery_task_name="jobs.tasks.removed.old_task", created_at=ago(60))
    unsent = make(created_at=ago(60))
    stale = make("running", max_retries=1, heartbeat_at=ago(settings.JOB_STALE_AFTER + 60), worker="dead:1")
    report = job_sweep()
    assert (report.dispatched, report.requeued) == (1, 1)
    gone = Job.objects.get(id=gone.id)
    assert gone.status == JobStatus.FAILED and "jobs.tasks.removed.old_task is not registered" in gone.error
    assert kinds(gone) == ["created", "failed"] and gone.finished_at is not None
    assert str(unsent.id) in [m["id"] for m in published]
    assert Job.objects.get(id=stale.id).status == JobStatus.PENDING


def test_maintenance_runs_on_its_own_queue():
    from celery import current_app

    for name in ("dispatch_jobs", "recover_jobs"):
        task = f"jobs.tasks.maintenance_tasks.{name}"
        assert current_app.amqp.router.route({}, task)["queue"].name == "maintenance"
    assert {entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} == {"maintenance"}


def test_a_job_requeued_after_its_worker_died_starts_from_zero_progress():
    job = make("running", max_retries=1, progress=55, progress_meta={"message": "half"}, heartbeat_at=ago(120))
    assert job_sweep().requeued == 1
    row = Job.objects.get(id=job.id)
    assert (row.status, row.progress, row.progress_meta) == ("pending", 0, {})
