"""Per-user quotas: active jobs and submissions per minute, checked atomically when jobs are written.

The defaults (JOB_QUOTA_MAX_ACTIVE / JOB_QUOTA_PER_MINUTE = 1000) are tested as they ship: the rows
that fill a quota are made with the factory, then one more job goes through the API.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobStatus
from jobs.services.creation import job_create
from jobs.services.operations import job_retry
from jobs.tests.factories import LONG_RUNNING_TASK, JobFactory, make
from jobs.tests.faults.test_dispatch_faults import trigger
from taskhub.errors import ApplicationError

pytestmark = pytest.mark.django_db

CREATE = "/api/v1/jobs/"
BULK = "/api/v1/jobs/bulk/"
ONE = {"celery_task_name": LONG_RUNNING_TASK, "kwargs": {"seconds": 0}}


def fill(owner, n: int, *, status: str = JobStatus.PENDING, age: timedelta = timedelta(minutes=5)) -> None:
    """``n`` jobs of ``owner`` in ``status``, created ``age`` ago (no events, nothing sent). The time is
    taken once they are built, right before the insert (building 1,000 took seconds on a loaded CI run)."""
    jobs = JobFactory.build_batch(n, owner=owner, status=status)
    created = timezone.now() - age
    for job in jobs:
        job.created_at = created
    Job.objects.bulk_create(jobs)


def test_the_default_active_quota_refuses_job_1001_with_429_naming_the_limit(user, user_client, nothing_written):
    fill(user, 600, status=JobStatus.PENDING)
    fill(user, 400, status=JobStatus.RUNNING)
    fill(user, 50, status=JobStatus.SUCCEEDED)  # finished jobs do not count

    with nothing_written():
        body = assert_error(user_client.post(CREATE, ONE, format="json"), 429, "quota_active_jobs")
    assert "at most 1000 active (pending or running) jobs" in body["message"]
    assert "you have 1000" in body["message"]


def test_the_default_per_minute_quota_refuses_submission_1001_with_retry_after(user, user_client, nothing_written):
    fill(user, 1000, status=JobStatus.SUCCEEDED, age=timedelta(seconds=20))

    room_at = Job.objects.filter(owner=user).earliest("created_at").created_at + timedelta(seconds=60)
    with nothing_written():
        asked = timezone.now()
        response = user_client.post(CREATE, ONE, format="json")
        answered = timezone.now()
    body = assert_error(response, 429, "quota_per_minute")
    assert "at most 1000 new jobs per minute" in body["message"]
    # The oldest of them leaves the window ~40 s from now: when, by the request's own clock.
    soonest, latest = ((room_at - at).total_seconds() for at in (answered, asked))
    assert 30 < soonest and int(soonest) <= int(response["Retry-After"]) <= int(latest) + 1


def test_jobs_older_than_a_minute_do_not_count_against_the_per_minute_quota(user, user_client):
    fill(user, 999, status=JobStatus.SUCCEEDED, age=timedelta(seconds=61))
    fill(user, 999, status=JobStatus.SUCCEEDED, age=timedelta(seconds=30))

    assert user_client.post(CREATE, ONE, format="json").status_code == 201
    assert_error(user_client.post(CREATE, ONE, format="json"), 429, "quota_per_minute")


def test_a_bulk_request_counts_each_job(user, user_client, nothing_written):
    user.max_jobs_per_minute = 5
    user.save()
    assert user_client.post(BULK, {"jobs": [ONE] * 3}, format="json").status_code == 201

    with nothing_written():
        body = assert_error(user_client.post(BULK, {"jobs": [ONE] * 3}, format="json"), 429, "quota_per_minute")
    assert "submitted 3 in the last 60 seconds and asked for 3 more" in body["message"]
    assert user_client.post(BULK, {"jobs": [ONE] * 2}, format="json").status_code == 201


def test_a_bulk_request_larger_than_the_quota_itself_says_so(user, user_client, nothing_written):
    user.max_active_jobs = 4
    user.save()
    with nothing_written():
        body = assert_error(user_client.post(BULK, {"jobs": [ONE] * 5}, format="json"), 429, "quota_active_jobs")
    assert body["message"] == "Quota exceeded: this request asks for 5 jobs; the limit is 4 active jobs per user."


def test_a_users_own_limit_overrides_the_setting_and_0_means_no_limit(user, user_client, settings):
    settings.JOB_QUOTA_MAX_ACTIVE = 1
    user.max_active_jobs = 0
    user.save()
    for _ in range(3):
        assert user_client.post(CREATE, ONE, format="json").status_code == 201

    user.max_active_jobs = 3
    user.save()
    assert_error(user_client.post(CREATE, ONE, format="json"), 429, "quota_active_jobs")


def test_settings_of_0_mean_no_limit(user, user_client, settings):
    settings.JOB_QUOTA_MAX_ACTIVE = settings.JOB_QUOTA_PER_MINUTE = 0
    fill(user, 1500, age=timedelta(seconds=1))
    assert user_client.post(CREATE, ONE, format="json").status_code == 201


def test_finished_jobs_free_active_slots(user, user_client):
    user.max_active_jobs = 1
    user.save()
    first = user_client.post(CREATE, ONE, format="json").json()
    assert_error(user_client.post(CREATE, ONE, format="json"), 429, "quota_active_jobs")

    Job.objects.filter(id=first["id"]).update(status=JobStatus.SUCCEEDED)
    assert user_client.post(CREATE, ONE, format="json").status_code == 201


def test_staff_are_exempt_unless_the_setting_says_otherwise(staff_user, staff_client, settings):
    staff_user.max_active_jobs = 1
    staff_user.save()
    fill(staff_user, 2)
    assert staff_client.post(CREATE, ONE, format="json").status_code == 201

    settings.JOB_QUOTA_EXEMPT_STAFF = False
    assert_error(staff_client.post(CREATE, ONE, format="json"), 429, "quota_active_jobs")


def test_quotas_are_per_user(user, user_client, other_user, other_client):
    user.max_active_jobs = other_user.max_active_jobs = 1
    user.save()
    other_user.save()
    assert user_client.post(CREATE, ONE, format="json").status_code == 201
    assert other_client.post(CREATE, ONE, format="json").status_code == 201
    assert_error(user_client.post(CREATE, ONE, format="json"), 429)


def test_an_idempotent_replay_at_the_limit_returns_the_first_job(user, user_client):
    user.max_active_jobs = 1
    user.save()
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    first = user_client.post(CREATE, ONE, format="json", **headers)
    assert first.status_code == 201

    again = user_client.post(CREATE, ONE, format="json", **headers)
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert Job.objects.filter(owner=user).count() == 1


def test_a_retry_by_the_owner_counts_against_the_active_quota(user, user_client):
    user.max_active_jobs = 1
    user.save()
    make("pending", owner=user)
    failed = make("failed", owner=user)

    body = assert_error(user_client.post(f"/api/v1/jobs/{failed.id}/retry/"), 429, "quota_active_jobs")
    assert "at most 1 active" in body["message"]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 0)
    # A retry is not a new submission: the per-minute quota does not apply to it.
    user.max_active_jobs, user.max_jobs_per_minute = 0, 1
    user.save()
    make("pending", owner=user)  # created now: the minute is full
    assert job_retry(job_id=failed.id, by=user).status == JobStatus.PENDING


def test_a_staff_retry_of_a_users_job_is_not_held_by_the_users_quota(user, staff_user):
    user.max_active_jobs = 1
    user.save()
    make("pending", owner=user)
    failed = make("failed", owner=user)
    assert job_retry(job_id=failed.id, by=staff_user).status == JobStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_racing_requests_cannot_both_take_the_last_slot(user):
    """Eight threads, each its own database connection, race for five slots: exactly five win.

    A trigger holds every insert for 0.2 s, so without the lock all eight would count the same
    committed rows and all eight would be written."""
    user.max_active_jobs = 5
    user.save()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create() -> None:
        try:
            barrier.wait()
            job_create(owner=user, celery_task_name=LONG_RUNNING_TASK, kwargs={"seconds": 0})
            outcomes.append("created")
        except ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(8)]
    with trigger("slow_job_insert", "BEFORE INSERT", "ROW", "PERFORM pg_sleep(0.2); RETURN NEW;"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(outcomes) == ["created"] * 5 + ["quota_active_jobs"] * 3
    assert Job.objects.filter(owner=user).count() == 5
