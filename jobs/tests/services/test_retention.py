"""Retention: old finished jobs and expired Celery result rows are deleted in batches; active jobs never."""

import threading
from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.models import Job, JobEvent, JobEventKind
from jobs.services.retention import (
    job_purge_finished,
    job_purge_task_results,
    job_retention_policy,
    parse_duration,
)
from jobs.tasks.maintenance_tasks import purge_jobs
from jobs.tests.factories import make
from taskhub.errors import InvalidInput

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def old(status: str, *, days: float, finished: bool = True, **fields) -> Job:
    """A job in ``status`` created a day before it finished, ``days`` ago, with two timeline lines."""
    finished_at = timezone.now() - timedelta(days=days)
    fields.setdefault("created_at", finished_at - DAY)
    if status not in ("pending", "running"):
        fields["finished_at"] = finished_at if finished else None
    job = make(status, **fields)
    JobEvent.objects.bulk_create(
        [JobEvent(job=job, kind=JobEventKind.CREATED), JobEvent(job=job, kind=JobEventKind.STARTED)]
    )
    return job


def remaining() -> set:
    return set(Job.objects.values_list("id", flat=True))


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 30D ", timedelta(days=30)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30x", "-1d", "", "  ", "d", "30", "1.5d", "30 d", "0d", "0h0m", "1d-2h", None, 30])
def test_parse_duration_refuses_anything_else_naming_the_option(text):
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, name="--older-than")
    assert caught.value.message.startswith("--older-than: ")
    assert caught.value.code == "invalid_duration"
    assert "--older-than" in caught.value.fields


# --- the policy ----------------------------------------------------------------------------------


def test_default_policy_comes_from_the_settings():
    assert job_retention_policy() == {
        "succeeded": timedelta(days=30),
        "failed": timedelta(days=90),
        "revoked": timedelta(days=30),
        "dead": timedelta(days=90),  # JOB_RETENTION_DEAD empty: as failed
    }


@pytest.mark.parametrize("value", ["", "0", " 0 ", None])
def test_an_empty_or_zero_setting_keeps_that_status_forever(settings, value):
    settings.JOB_RETENTION_FAILED = value
    assert job_retention_policy()["failed"] is None
    failed = old("failed", days=1000)
    succeeded = old("succeeded", days=1000)
    assert job_purge_finished() == {"succeeded": 1, "revoked": 0}
    assert remaining() == {failed.id}
    assert not JobEvent.objects.filter(job_id=succeeded.id).exists()


def test_a_bad_setting_is_a_configuration_error_naming_it_and_nothing_is_deleted(settings):
    settings.JOB_RETENTION_REVOKED = "30 days"
    job = old("succeeded", days=1000)
    with pytest.raises(ImproperlyConfigured, match="JOB_RETENTION_REVOKED: '30 days' is not a duration"):
        job_purge_finished()
    assert remaining() == {job.id}


# --- deleting jobs -------------------------------------------------------------------------------


def test_deletes_old_finished_jobs_with_their_timeline_and_keeps_the_rest():
    doomed = [old("succeeded", days=40), old("failed", days=100), old("revoked", days=31)]
    kept = [
        old("succeeded", days=29),  # younger than 30d
        old("failed", days=60),  # failed jobs are kept 90d
        old("pending", days=400),  # active jobs are never deleted, however old
        old("running", days=400),
    ]
    assert job_purge_finished() == {"succeeded": 1, "failed": 1, "revoked": 1}
    assert remaining() == {job.id for job in kept}
    assert not JobEvent.objects.filter(job_id__in=[job.id for job in doomed]).exists()
    assert JobEvent.objects.count() == 2 * len(kept)


def test_age_is_finished_at_else_created_at():
    # Created long ago, finished recently (retried, or queued for a long time): young.
    finished_recently = old("failed", days=1, created_at=timezone.now() - timedelta(days=500))
    # Revoked before it ever ran, without finished_at: its age is its created_at.
    never_finished_old = old("revoked", days=0, finished=False, created_at=timezone.now() - timedelta(days=20))
    never_finished_new = old("revoked", days=0, finished=False, created_at=timezone.now() - timedelta(days=5))
    assert job_purge_finished(older_than=timedelta(days=10)) == {"succeeded": 0, "failed": 0, "revoked": 1}
    assert remaining() == {finished_recently.id, never_finished_new.id}
    assert never_finished_old.id not in remaining()


def test_older_than_applies_to_every_chosen_status():
    jobs = {status: old(status, days=2) for status in ("succeeded", "failed", "revoked")}
    assert job_purge_finished(older_than=timedelta(days=1), statuses=["failed", "revoked"]) == {
        "failed": 1,
        "revoked": 1,
    }
    assert remaining() == {jobs["succeeded"].id}


def test_many_batches_delete_everything_without_loading_job_payloads():
    jobs = [old("succeeded", days=40 + index) for index in range(7)]
    recent = old("succeeded", days=1)
    with CaptureQueriesContext(connection) as queries:
        assert job_purge_finished(batch_size=2) == {"succeeded": 7, "failed": 0, "revoked": 0}
    assert remaining() == {recent.id}
    selects = [query["sql"] for query in queries if query["sql"].startswith("SELECT")]
    assert all('"result"' not in sql and '"args"' not in sql for sql in selects), selects
    locking = [sql for sql in selects if "FOR UPDATE SKIP LOCKED" in sql and "LIMIT 2" in sql]
    # succeeded: batches of 2, 2, 2, 1, then the empty one that ends it; failed and revoked: one empty one each.
    assert len(locking) == 5 + 2
    assert not set(job.id for job in jobs) & remaining()


def test_dry_run_counts_and_deletes_nothing():
    jobs = [old("succeeded", days=40), old("failed", days=100), old("failed", days=200), old("pending", days=400)]
    assert job_purge_finished(dry_run=True) == {"succeeded": 1, "failed": 2, "revoked": 0}
    assert remaining() == {job.id for job in jobs}
    assert JobEvent.objects.count() == 2 * len(jobs)


@pytest.mark.parametrize("status", ["pending", "running"])
def test_active_statuses_are_refused_and_nothing_is_deleted(status):
    jobs = [old("succeeded", days=40), old(status, days=400)]
    with pytest.raises(InvalidInput) as caught:
        job_purge_finished(older_than=DAY, statuses=["succeeded", status])
    assert caught.value.code == "job_active"
    assert f"{status} jobs are active and are never deleted" in caught.value.message
    assert remaining() == {job.id for job in jobs}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"statuses": ["done"]}, "status: unknown status 'done'"),
        ({"statuses": []}, "status: give at least one of succeeded, failed, revoked"),
        ({"batch_size": 0}, "batch_size: must be a whole number from 1 to 10,000, got 0"),
        ({"batch_size": -5}, "batch_size: must be a whole number"),
        ({"batch_size": 10_001}, "batch_size: must be a whole number"),
        ({"batch_size": True}, "batch_size: must be a whole number"),
        ({"batch_size": "100"}, "batch_size: must be a whole number"),
        ({"older_than": timedelta(0)}, "older_than: must be positive"),
        ({"older_than": -DAY}, "older_than: must be positive"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_deleted(arguments, message):
    job = old("succeeded", days=400)
    with pytest.raises(InvalidInput, match=message):
        job_purge_finished(**arguments)
    assert remaining() == {job.id}


@pytest.mark.django_db(transaction=True)
def test_a_job_locked_by_another_transaction_is_left_for_the_next_run():
    """An operator's retry holds the row while it changes it: the purge skips it instead of racing."""
    locked, _other = old("failed", days=200), old("failed", days=200)
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        with transaction.atomic():
            list(Job.objects.select_for_update().filter(id=locked.id))
            holding.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert holding.wait(10)
        assert job_purge_finished(statuses=["failed"]) == {"failed": 1}
        assert remaining() == {locked.id}
    finally:
        release.set()
        thread.join()
    assert job_purge_finished(statuses=["failed"]) == {"failed": 1}
    assert not remaining()


# --- Celery result rows ------------------------------------------------------------------------


def results(*ages_in_hours: float) -> list[TaskResult]:
    rows = [TaskResult.objects.create(task_id=f"task-{index}", status="SUCCESS") for index in range(len(ages_in_hours))]
    for row, hours in zip(rows, ages_in_hours, strict=True):
        # date_done is auto_now: set the past with an UPDATE.
        TaskResult.objects.filter(id=row.id).update(date_done=timezone.now() - timedelta(hours=hours))
    return rows


def test_result_rows_older_than_celery_result_expires_are_deleted_in_batches():
    assert settings.CELERY_RESULT_EXPIRES == DAY
    rows = results(25, 30, 48, 100, 23, 1)
    assert job_purge_task_results(dry_run=True) == 4
    assert TaskResult.objects.count() == 6
    assert job_purge_task_results(batch_size=3) == 4
    assert set(TaskResult.objects.values_list("id", flat=True)) == {rows[4].id, rows[5].id}


def test_result_rows_are_kept_forever_when_celery_result_expires_is_zero(settings):
    settings.CELERY_RESULT_EXPIRES = timedelta(0)
    results(1000)
    assert job_purge_task_results() == 0
    assert TaskResult.objects.count() == 1


def test_result_expiry_in_seconds_as_celery_also_accepts(settings):
    settings.CELERY_RESULT_EXPIRES = 3600
    results(2, 0.5)
    assert job_purge_task_results() == 1


# --- the periodic task -----------------------------------------------------------------------------


def test_purge_jobs_task_applies_the_policy_and_prunes_results():
    old("succeeded", days=31)
    old("failed", days=31)  # kept: 90d
    kept = old("failed", days=31)
    results(48)
    counts = purge_jobs.apply().get()
    assert counts == {"succeeded": 1, "failed": 0, "revoked": 0, "workflows": 0, "task_results": 1}
    assert kept.id in remaining() and len(remaining()) == 2


def test_beat_runs_the_purge_daily():
    entry = settings.CELERY_BEAT_SCHEDULE["taskhub-purge-jobs"]
    assert entry["task"] == purge_jobs.name == "jobs.tasks.maintenance_tasks.purge_jobs"
    assert entry["schedule"] == crontab(minute=30, hour=3)
    assert entry["options"]["expires"] <= 24 * 3600


# --- dead jobs (failed, every automatic retry used) keep their own age: JOB_RETENTION_DEAD -----------


def _finished(status: str, days: int, **fields):
    at = timezone.now() - days * DAY
    return make(status, finished_at=at, created_at=at - timedelta(seconds=1), **fields)


def test_dead_jobs_have_their_own_retention(settings):
    settings.JOB_RETENTION_FAILED = "90d"
    settings.JOB_RETENTION_DEAD = "180d"
    old_failed = _finished("failed", 100, attempts=0, max_retries=3)  # failed early: JOB_RETENTION_FAILED
    old_dead = _finished("failed", 100, attempts=3, max_retries=3)  # dead, younger than 180 days: kept
    older_dead = _finished("failed", 200, attempts=0, max_retries=0)  # dead, older than 180 days
    counts = job_purge_finished(statuses=["failed"])
    assert counts == {"failed": 1, "dead": 1}
    assert set(Job.objects.values_list("id", flat=True)) == {old_dead.id}
    assert not Job.objects.filter(id__in=[old_failed.id, older_dead.id]).exists()


def test_dead_jobs_kept_forever_when_their_retention_is_zero(settings):
    settings.JOB_RETENTION_FAILED = "1d"
    settings.JOB_RETENTION_DEAD = "0"
    dead = _finished("failed", 1000, attempts=3, max_retries=3)
    assert job_purge_finished(statuses=["failed"], dry_run=True) == {"failed": 0}
    assert job_retention_policy()["dead"] is None
    assert job_purge_finished(statuses=["failed"]) == {"failed": 0}
    assert Job.objects.filter(id=dead.id).exists()


def test_dead_jobs_keep_the_failed_ones_age_when_their_retention_is_empty(settings):
    settings.JOB_RETENTION_FAILED = "7d"
    settings.JOB_RETENTION_DEAD = ""
    dead = _finished("failed", 10, attempts=3, max_retries=3)
    assert job_retention_policy()["dead"] == 7 * DAY
    assert job_purge_finished(statuses=["failed"]) == {"failed": 1}
    assert not Job.objects.filter(id=dead.id).exists()


def test_an_explicit_age_applies_to_dead_jobs_too(settings):
    settings.JOB_RETENTION_DEAD = "365d"
    dead = _finished("failed", 10, attempts=3, max_retries=3)
    assert job_purge_finished(older_than=7 * DAY, statuses=["failed"]) == {"failed": 1}
    assert not Job.objects.filter(id=dead.id).exists()


def test_a_malformed_dead_retention_names_its_setting(settings):
    settings.JOB_RETENTION_DEAD = "six months"
    with pytest.raises(ImproperlyConfigured, match="JOB_RETENTION_DEAD"):
        job_retention_policy()
