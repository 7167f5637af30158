"""Deadlines (``expires_at`` / ``expires_in``): a job not started by its deadline never runs and ends
``expired``, wherever it waited: in the broker, held by a paused queue, deferred by a rate limit or
a fair share, in a retry's backoff; the sweeper ends those no message will reach. The rows show it:
``started_at`` stays empty, and the timeline says why.

Deadlines of a second or so: the behaviour is the same at any length (the database's clock decides,
at the start and in the sweep); nothing here waits longer than the deadline it sets.
"""

import time
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import MANUAL_RETRY_STATUSES, TERMINAL_STATUSES, Job, JobEvent, JobStatus
from jobs.queues.services import queue_pause, queue_resume, rate_limit_set
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_fail, job_start
from jobs.services.operations import job_retry
from jobs.services.recovery import job_dispatch_due, job_expire_due, job_sweep
from jobs.tests.factories import kinds, make, snapshot
from taskhub.errors import InvalidInput

pytestmark = pytest.mark.django_db

EXPIRED = JobStatus.EXPIRED


def soon(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def wait_until(moment) -> None:
    """Sleep until ``moment`` has passed (a deadline of the test's own, a second or less away)."""
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def expired_line(job) -> JobEvent:
    return JobEvent.objects.get(job_id=job.id, kind="expired")


def assert_expired_unstarted(job) -> Job:
    row = Job.objects.get(id=job.id)
    assert (row.status, row.started_at, row.worker) == (EXPIRED, None, "")
    assert row.finished_at is not None
    line = expired_line(job)
    assert (line.from_status, line.to_status) == ("pending", "expired")
    assert line.message == f"expired: not started by {row.expires_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    assert "started" not in kinds(job)
    return row


def test_expired_is_a_terminal_status_an_operator_may_retry():
    assert EXPIRED in TERMINAL_STATUSES and EXPIRED in MANUAL_RETRY_STATUSES


# --- creation ------------------------------------------------------------------------------------


def test_expires_in_is_seconds_from_the_creation():
    before = timezone.now()
    job = job_create(owner=UserFactory(), celery_task_name="long_running_task", args=[1], expires_in=90)
    row = Job.objects.get(id=job.id)
    assert before + timedelta(seconds=90) <= row.expires_at <= timezone.now() + timedelta(seconds=90)


def test_expires_at_is_kept_as_given():
    deadline = soon(3600).replace(microsecond=0)
    job = job_create(owner=UserFactory(), celery_task_name="long_running_task", args=[1], expires_at=deadline)
    assert Job.objects.get(id=job.id).expires_at == deadline


@pytest.mark.parametrize(
    ("request_fields", "field", "words"),
    [
        ({"expires_at": "soon", "expires_in": 60}, "expires_in", "not both"),
        ({"expires_at": "past"}, "expires_at", "in the past"),
        ({"expires_at": "soon", "run_at": "later"}, "expires_at", "not after run_at"),
        ({"expires_in": 60, "run_at": "later"}, "expires_in", "not after run_at"),
        ({"expires_in": 0}, "expires_in", "positive"),
        ({"expires_in": -5}, "expires_in", "positive"),
        ({"expires_in": True}, "expires_in", "positive"),
        ({"expires_in": 10**12}, "expires_in", "ten years"),
    ],
)
def test_a_bad_deadline_is_refused_naming_its_field(nothing_written, request_fields, field, words):
    values = {"soon": soon(60), "past": ago(1), "later": soon(3600)}
    request = {
        key: values.get(value, value) if isinstance(value, str) else value for key, value in request_fields.items()
    }
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        job_create(owner=UserFactory(), celery_task_name="long_running_task", args=[1], **request)
    assert field in refused.value.fields and words in refused.value.message


def test_a_bad_deadline_in_a_bulk_names_its_item(nothing_written):
    items = [
        {"celery_task_name": "long_running_task", "args": [1], "expires_in": 60},
        {"celery_task_name": "long_running_task", "args": [1], "expires_at": ago(5)},
    ]
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        job_create_bulk(owner=UserFactory(), items=items)
    assert list(refused.value.fields) == ["jobs[1].expires_at"]


def test_an_idempotent_replay_with_expires_in_is_the_same_request():
    owner = UserFactory()
    first = job_create(owner=owner, celery_task_name="long_running_task", args=[1], expires_in=60, idempotency_key="k")
    again = job_create(owner=owner, celery_task_name="long_running_task", args=[1], expires_in=60, idempotency_key="k")
    assert again.id == first.id


# --- where a pending job waits -------------------------------------------------------------------


def test_a_message_consumed_after_the_deadline_expires_the_job_instead_of_running_it():
    job = make(dispatched_at=ago(5), expires_at=ago(1))
    assert job_start(job_id=job.id, worker="w:1", attempts=0) is None
    row = assert_expired_unstarted(job)
    assert expired_line(job).actor_label == "worker w:1"
    assert row.attempts == 0
    before = snapshot(job)
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # a duplicate: nothing more
    assert snapshot(job) == before and kinds(job) == ["created", "expired"]


def test_a_job_before_its_deadline_starts_as_usual():
    job = make(dispatched_at=ago(1), expires_at=soon(60))
    assert job_start(job_id=job.id, worker="w:1", attempts=0) is not None
    assert Job.objects.get(id=job.id).status == JobStatus.RUNNING


def test_jobs_held_by_a_paused_queue_past_their_deadline_end_expired_at_resume_and_never_start(published):
    queue_pause(queue="default", by=None, source="command")
    owner = UserFactory()
    short = job_create(owner=owner, celery_task_name="long_running_task", args=[1], expires_in=1)
    sent_then_held = job_create(owner=owner, celery_task_name="long_running_task", args=[1], expires_in=1)
    Job.objects.filter(id=sent_then_held.id).update(dispatched_at=timezone.now())  # sent before the pause
    assert job_start(job_id=sent_then_held.id, worker="w:1", attempts=0) is None  # held
    without = job_create(owner=owner, celery_task_name="long_running_task", args=[1])
    wait_until(Job.objects.get(id=short.id).expires_at)
    assert queue_resume(queue="default", by=None, source="command") == 1
    assert [m["id"] for m in published] == [str(without.id)]  # only the job without a deadline is sent
    for job in (short, sent_then_held):
        assert_expired_unstarted(job)
        assert expired_line(job).actor_label == "sweeper"
    assert kinds(sent_then_held) == ["created", "held", "expired"]
    for job in (short, sent_then_held):  # a late message (sent before the pause) changes nothing
        assert job_start(job_id=job.id, worker="w:1") is None
        assert_expired_unstarted(job)


def test_the_sweeper_ends_a_paused_queues_jobs_at_their_deadline_without_a_resume():
    queue_pause(queue="default", by=None, source="command")
    held = make(expires_at=ago(1))
    later = make(expires_at=soon(60))
    assert job_sweep().expired == 1
    assert_expired_unstarted(held)
    assert Job.objects.get(id=later.id).status == JobStatus.PENDING
    assert job_expire_due() == 0  # nothing more


def test_a_job_deferred_by_a_rate_limit_past_its_deadline_ends_expired_and_never_starts(
    published, django_capture_on_commit_callbacks
):
    rate_limit_set(scope="queue", name="default", limit=1, period=60, by=None, source="command")
    assert job_start(job_id=make().id, worker="w:1") is not None  # takes the only slot for a minute
    job = make(dispatched_at=ago(1), expires_at=soon(1))
    with django_capture_on_commit_callbacks(execute=True):
        assert job_start(job_id=job.id, worker="w:1", attempts=0) is None
    deferred = Job.objects.get(id=job.id)
    assert deferred.status == JobStatus.PENDING and deferred.run_at > deferred.expires_at
    wait_until(deferred.expires_at)
    assert job_dispatch_due() == 0  # past its deadline: not sent
    assert job_sweep().expired == 1
    assert_expired_unstarted(job)
    assert kinds(job) == ["created", "rate_limited", "expired"]


def test_a_job_waiting_for_its_owners_fair_share_past_its_deadline_ends_expired(user):
    from jobs.services.gates import forget_capacity

    user.max_running_jobs = 1
    user.save(update_fields=["max_running_jobs"])
    forget_capacity()
    assert job_start(job_id=make(owner=user).id, worker="w:1") is not None  # the owner's one place
    job = make(owner=user, dispatched_at=ago(1), expires_at=soon(0.5))
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None
    assert kinds(job) == ["created", "fair_share"]
    wait_until(Job.objects.get(id=job.id).expires_at)
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # its next try, after the deadline
    assert_expired_unstarted(job)
    assert kinds(job) == ["created", "fair_share", "expired"]


def test_a_job_waiting_for_its_concurrency_key_past_its_deadline_ends_expired_and_never_starts(staff_user):
    first = make(owner=staff_user, concurrency_key="tenant-7", concurrency_limit=1)
    job = make(
        owner=staff_user, concurrency_key="tenant-7", concurrency_limit=1, dispatched_at=ago(1), expires_at=soon(0.5)
    )
    assert job_start(job_id=first.id, worker="w:1") is not None
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # waits for the key
    assert kinds(job) == ["created", "concurrency"]
    wait_until(Job.objects.get(id=job.id).expires_at)
    assert job_sweep().expired == 1  # no release came: the sweep ends it
    assert_expired_unstarted(job)
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # a late release's message: nothing


def test_a_retry_whose_backoff_ends_after_the_deadline_is_not_scheduled_the_job_ends_expired(published):
    job = make("running", max_retries=3, expires_at=soon(0.5))  # backoff of its first retry: 1 to 2 s
    assert job_fail(job_id=job.id, attempts=0, error="boom", error_type="RuntimeError", worker="w:1") is False
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.error, row.error_type) == (EXPIRED, 0, "boom", "RuntimeError")
    line = expired_line(job)
    assert (line.from_status, line.to_status) == ("running", "expired")
    assert "expired: not started by" in line.message and "attempt 2 would have been due at" in line.message
    assert kinds(job) == ["created", "started", "expired"] and published == []


def test_a_retry_due_before_the_deadline_whose_message_comes_after_it_ends_expired(
    published, django_capture_on_commit_callbacks
):
    job = make("running", max_retries=3, expires_at=soon(60))
    with django_capture_on_commit_callbacks(execute=True):
        assert job_fail(job_id=job.id, attempts=0, error="boom", worker="w:1") is True
    assert [m["id"] for m in published] == [str(job.id)]  # the retry is sent, with its countdown
    Job.objects.filter(id=job.id).update(expires_at=ago(0.1))  # ... and consumed only after the deadline
    assert job_start(job_id=job.id, worker="w:2", attempts=1) is None
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts) == (EXPIRED, 1)
    assert kinds(job) == ["created", "started", "retry_scheduled", "expired"]  # the retry never started


def test_an_operators_retry_of_an_expired_job_clears_its_deadline(django_capture_on_commit_callbacks):
    job = make("expired")
    retried = job_retry(job_id=job.id, by=None)
    assert (retried.status, retried.expires_at) == (JobStatus.PENDING, None)
    line = JobEvent.objects.get(job_id=job.id, kind="retried")
    assert "deadline" in line.message and line.data["expires_at_cleared"]
    assert job_start(job_id=job.id, worker="w:1") is not None


def test_the_sweeps_scan_uses_its_partial_index(django_db_setup):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id, expires_at FROM jobs_job WHERE status = 'pending' AND expires_at IS NOT NULL "
            "AND expires_at <= now() ORDER BY expires_at LIMIT 500"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "job_pending_expires" in plan


# --- expired, shown where statuses are -----------------------------------------------------------


def test_a_django_tasks_result_of_an_expired_job_is_failed_with_a_job_expired_error():
    from jobs.tasks.django_backend import JobExpired
    from jobs.tasks.standard_api import TaskResultStatus
    from jobs.tests import standard_tasks

    result = standard_tasks.add.enqueue(1, 2)
    Job.objects.filter(id=result.id).update(expires_at=ago(1))
    assert job_expire_due() == 1
    result.refresh()
    assert (result.status, result.job_status) == (TaskResultStatus.FAILED, "expired")
    [error] = result.errors
    assert error.exception_class is JobExpired and "expired: not started by" in error.traceback


def test_stats_and_metrics_count_expired_jobs(user, user_client, staff_user):
    from django.test import Client

    job = make(dispatched_at=ago(5), expires_at=ago(1), owner=user)
    assert job_start(job_id=job.id, worker="w:1") is None
    stats = user_client.get("/api/v1/stats/").json()
    assert stats["last_hour"]["expired"] == 1 and stats["last_hour"]["finished"] == 1
    assert stats["last_hour"]["failure_rate"] is None  # nobody's failure
    assert [queue["expired"] for queue in stats["queues"] if queue["queue"] == "default"] == [1]
    session = Client()
    session.force_login(staff_user)
    metrics = session.get("/metrics").content.decode()
    assert 'status="expired"' in metrics


def test_beat_runs_the_expiry_sweep_every_sweep_interval_on_the_maintenance_queue(settings):
    from celery import current_app

    from jobs.tasks.maintenance_tasks import expire_jobs

    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"].endswith(".expire_jobs")]
    assert entry["schedule"] == settings.JOB_SWEEP_INTERVAL == 10.0  # the production default
    assert current_app.amqp.router.route({}, entry["task"])["queue"].name == "maintenance"
    held = make(expires_at=ago(1))
    assert expire_jobs() == 1
    assert_expired_unstarted(held)


def test_a_request_without_a_deadline_keeps_the_fingerprint_it_had_before_deadlines():
    """Idempotency keys stored before deadlines existed still match a replay of their request."""
    import dataclasses
    import hashlib
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    from jobs.services.creation import job_build_spec

    spec = job_build_spec(owner=UserFactory(), celery_task_name="long_running_task", args=[1])
    before = {  # the fields a fingerprint had then
        field.name: getattr(spec, field.name)
        for field in dataclasses.fields(spec)
        if field.name not in ("entry", "concurrency", "expires_at", "expires_in")
    }
    data = json.dumps({"task": spec.entry.name, **before}, sort_keys=True, cls=DjangoJSONEncoder)
    assert spec.fingerprint() == hashlib.sha256(data.encode()).hexdigest()
