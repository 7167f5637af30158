"""A host whose clock is off does not skew a job's times: every time a service writes for a job
(its timeline lines' ``at``, a finish's ``finished_at``, a retry's or a wait's ``run_at``) and a
retry's expiry decision are the database's clock, as the start, heartbeat and success already were.

The many-hosts test bed runs workers under libfaketime 120 s off; here the process's clock
(``django.utils.timezone.now``) is moved 120 s either way, the outside world this mocks, and every
time is compared with PostgreSQL's ``clock_timestamp()``.
"""

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.services.cancelling import job_cancel
from jobs.services.execution import OverShare, job_fail, job_fail_unstarted, job_revoke
from jobs.services.gates import Limit
from jobs.services.operations import job_retry
from jobs.services.waiting import job_defer, job_wait_for_share
from jobs.tests.factories import make

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="compares with PostgreSQL's clock"),
]

SKEW = 120.0  # seconds, as the test bed's faketime hosts
NEAR = timedelta(seconds=2)


@pytest.fixture(params=[SKEW, -SKEW], ids=["fast", "slow"])
def skew(request):
    """The process's clock ``request.param`` seconds off; the skew, as a timedelta."""
    real = timezone.now
    off = timedelta(seconds=request.param)
    with mock.patch("django.utils.timezone.now", lambda: real() + off):
        yield off


def db_now():
    """The database's clock now (``clock_timestamp()``: not the test transaction's start)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def near(moment, reference) -> bool:
    return abs(moment - reference) <= NEAR


def line(job, kind: str) -> JobEvent:
    (found,) = JobEvent.objects.filter(job_id=job.id, kind=kind)
    return found


def test_a_retry_is_due_its_backoff_after_the_databases_now(skew):
    job = make("running", max_retries=3)
    assert job_fail(job_id=job.id, attempts=0, error="boom", worker="w:1") is True
    now, row = db_now(), Job.objects.get(id=job.id)
    scheduled = line(job, JobEventKind.RETRY_SCHEDULED)
    assert near(row.run_at, now + timedelta(seconds=scheduled.data["delay"]))
    assert near(scheduled.at, now)


def test_a_failure_ends_at_the_databases_now(skew):
    job = make("running", max_retries=0)
    assert job_fail(job_id=job.id, attempts=0, error="boom", worker="w:1") is False
    now, row = db_now(), Job.objects.get(id=job.id)
    assert row.status == JobStatus.FAILED
    assert near(row.finished_at, now) and near(line(job, JobEventKind.FAILED).at, now)


def test_a_start_that_never_came_fails_at_the_databases_now(skew):
    job = make()
    assert job_fail_unstarted(job_id=job.id, error="TypeError: bad args") is True
    now, row = db_now(), Job.objects.get(id=job.id)
    assert near(row.finished_at, now) and near(line(job, JobEventKind.FAILED).at, now)


def test_a_revoke_ends_at_the_databases_now(skew):
    job = make("running")
    job_revoke(job_id=job.id, attempts=0, reason="cancelled", worker="w:1")
    now, row = db_now(), Job.objects.get(id=job.id)
    assert near(row.finished_at, now) and near(line(job, JobEventKind.REVOKED).at, now)


def test_an_operators_cancel_is_written_at_the_databases_now(skew):
    pending, running = make(), make("running")
    job_cancel(job_id=pending.id)
    job_cancel(job_id=running.id)
    now = db_now()
    assert near(Job.objects.get(id=pending.id).finished_at, now)
    assert near(line(pending, JobEventKind.REVOKED).at, now)
    assert near(line(running, JobEventKind.CANCEL_REQUESTED).at, now)


def test_an_operators_retry_is_written_at_the_databases_now(skew):
    job = make("failed")
    job_retry(job_id=job.id)
    assert near(line(job, JobEventKind.RETRIED).at, db_now())


def test_a_job_over_its_owners_share_waits_from_the_databases_now(skew):
    job = make(dispatched_at=timezone.now())
    refused = OverShare(owner_id=job.owner_id, running=1, cap=1, capacity=None)
    assert job_wait_for_share(job_id=job.id, fence=Q(), refused=refused) is True
    now, row = db_now(), Job.objects.get(id=job.id)
    assert near(row.run_at, now + timedelta(seconds=line(job, JobEventKind.FAIR_SHARE).data["wait"]))
    assert near(line(job, JobEventKind.FAIR_SHARE).at, now)


def test_a_job_whose_rate_limit_is_gone_is_due_at_the_databases_now(skew):
    job = make(dispatched_at=timezone.now())
    gone = Limit(id=10**9, scope="queue", name="nowhere", limit=1, period=60)
    assert job_defer(job_id=job.id, fence=Q(), limit=gone) is True
    now = db_now()
    assert near(Job.objects.get(id=job.id).run_at, now) and near(line(job, JobEventKind.RATE_LIMITED).at, now)


@pytest.mark.parametrize(
    ("clock", "deadline", "expires"),
    [
        # A fast clock would take a retry due well before the deadline (1 to 2 s of backoff, 60 s
        # left) for one due after it; a slow one, a retry due after it (0.5 s left) for one before.
        (SKEW, 60.0, False),
        (-SKEW, 0.5, True),
    ],
    ids=["fast-clock-still-retries", "slow-clock-still-expires"],
)
def test_whether_a_retry_passes_the_deadline_is_the_databases_decision(clock, deadline, expires):
    job = make("running", max_retries=3, expires_at=db_now() + timedelta(seconds=deadline))
    real = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real() + timedelta(seconds=clock)):
        assert job_fail(job_id=job.id, attempts=0, error="boom", worker="w:1") is not expires
    row = Job.objects.get(id=job.id)
    assert row.status == (JobStatus.EXPIRED if expires else JobStatus.PENDING)
    if expires:
        assert near(row.finished_at, db_now()) and near(line(job, JobEventKind.EXPIRED).at, db_now())


def test_a_line_given_no_time_comes_back_with_the_databases(skew):
    """``save()`` and ``bulk_create()`` read the default back (INSERT … RETURNING): ``at`` is a time
    at once, for whoever orders or shows the lines they just wrote."""
    job = make()
    saved = JobEvent(job_id=job.id, kind=JobEventKind.HELD)
    saved.save()
    many = JobEvent.objects.bulk_create([JobEvent(job_id=job.id, kind=JobEventKind.HELD) for _ in range(2)])
    timed = JobEvent(job_id=job.id, kind=JobEventKind.HELD, at=timezone.now())  # named: kept as given
    JobEvent.objects.bulk_create([timed, JobEvent(job_id=job.id, kind=JobEventKind.HELD)])
    now = db_now()
    assert all(near(line.at, now) for line in [saved, *many])
    assert abs(JobEvent.objects.get(id=timed.id).at - now) > timedelta(seconds=SKEW - 2)


def test_a_line_not_saved_yet_prints_without_a_time():
    """Before it is saved a line given no time has none (the database's default is written by the
    INSERT): printing it (the admin's messages, a debugger, a log) says so instead of failing."""
    job = make()
    unsaved = JobEvent(job_id=job.id, kind=JobEventKind.HELD)
    assert str(unsaved) == f"{job.id} held (not saved yet)"
    unsaved.save()
    assert str(unsaved).startswith(f"{job.id} held at ")


def test_a_retry_due_past_the_deadline_by_the_time_it_is_written_ends_expired(monkeypatch):
    """The deadline is checked where the retry is written, not only where the job was read: a
    failure whose read found the retry due just inside ``expires_at`` and whose write came later
    (a slow machine between the two statements: 50 ms here) wrote a pending job due after its
    deadline, which only its next start then ended."""
    monkeypatch.setattr("jobs.catalog.RetryPolicy.delay", lambda self, attempts: 1.0)  # no jitter
    job = make("running", max_retries=3)
    with connection.cursor() as cursor:  # due 1 s after the read, deadline 1.025 s after now
        cursor.execute(
            "UPDATE jobs_job SET expires_at = clock_timestamp() + interval '1025 ms' WHERE id = %s", [job.id]
        )
    read = []

    def slow_after_the_read(execute, sql, params, many, context):
        answer = execute(sql, params, many, context)
        if sql.startswith("SELECT") and "expires_at" in sql and not read:
            read.append(sql)
            time.sleep(0.05)
        return answer

    with connection.execute_wrapper(slow_after_the_read):
        retried = job_fail(job_id=job.id, attempts=0, error="boom", worker="w:1")
    row = Job.objects.get(id=job.id)
    assert read, "the failure's read was not seen"
    assert (retried, row.status) == (False, JobStatus.EXPIRED), (row.status, row.run_at, row.expires_at)
    assert line(job, JobEventKind.EXPIRED).data["retry_due"]
