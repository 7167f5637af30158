"""manage.py cleanup_jobs: every option, and bad input refused with exit status 2 and nothing deleted."""

import io
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.models import Job, JobEvent
from jobs.tests.services.test_retention import old, remaining
from taskhub.testing import child_database_url

pytestmark = pytest.mark.django_db


def cleanup(*args: str, **options) -> str:
    out = io.StringIO()
    call_command("cleanup_jobs", *args, stdout=out, **options)
    return out.getvalue()


def refused(*args: str, **options) -> str:
    """The command's error for bad input: exit status 2."""
    with pytest.raises(CommandError) as caught:
        call_command("cleanup_jobs", *args, stdout=io.StringIO(), **options)
    assert caught.value.returncode == 2, caught.value
    return str(caught.value)


def row(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(label))


def count(output: str, label: str) -> int:
    return int(row(output, label).split()[-1].replace(",", ""))


@pytest.fixture
def jobs():
    """Old and young jobs of every status, each with a two-line timeline."""
    return {
        "old_succeeded": old("succeeded", days=40),
        "old_failed": old("failed", days=100),
        "old_revoked": old("revoked", days=40),
        "young_succeeded": old("succeeded", days=2),
        "young_failed": old("failed", days=60),
        "pending": old("pending", days=400),
        "running": old("running", days=400),
    }


def test_without_options_each_status_keeps_its_retention_setting(jobs):
    output = cleanup()
    assert (count(output, "succeeded"), count(output, "failed"), count(output, "revoked")) == (1, 1, 1)
    assert count(output, "total") == 3
    assert "older than 30d" in row(output, "succeeded") and "older than 90d" in row(output, "failed")
    assert output.startswith("Deleted finished jobs")
    names = {name for name, job in jobs.items() if job.id in remaining()}
    assert names == {"young_succeeded", "young_failed", "pending", "running"}
    assert JobEvent.objects.count() == 2 * 4


def test_older_than_and_several_statuses(jobs):
    output = cleanup("--older-than", "1d", "--status", "succeeded", "failed")
    assert (count(output, "succeeded"), count(output, "failed"), count(output, "total")) == (2, 2, 4)
    assert "revoked" not in output.split("Celery")[0]
    names = {name for name, job in jobs.items() if job.id in remaining()}
    assert names == {"old_revoked", "pending", "running"}


def test_status_may_be_repeated(jobs):
    output = cleanup("--older-than", "30d", "--status", "revoked", "--status", "succeeded")
    assert (count(output, "revoked"), count(output, "succeeded"), count(output, "total")) == (1, 1, 2)


@pytest.mark.parametrize("duration", ["12h", "90m", "1d12h", "2w"])
def test_older_than_units(duration):
    young = old("succeeded", days=0.04)  # under an hour
    old("succeeded", days=20)
    output = cleanup("--older-than", duration)
    assert count(output, "succeeded") == 1
    assert remaining() == {young.id}


def test_dry_run_counts_and_deletes_nothing(jobs):
    results = TaskResult.objects.create(task_id="t1", status="SUCCESS")
    TaskResult.objects.filter(id=results.id).update(date_done=timezone.now() - timedelta(days=3))
    before = remaining()
    output = cleanup("--dry-run")
    assert output.startswith("Would delete finished jobs")
    assert count(output, "total") == 3
    assert "Would delete 1 Celery result rows older than 1d (CELERY_RESULT_EXPIRES)." in output
    assert "Dry run: nothing was deleted" in output
    assert remaining() == before and TaskResult.objects.count() == 1
    assert JobEvent.objects.count() == 2 * len(jobs)


def test_expired_celery_result_rows_are_pruned_and_counted():
    rows = [TaskResult.objects.create(task_id=f"t{index}", status="SUCCESS") for index in range(3)]
    TaskResult.objects.filter(id__in=[rows[0].id, rows[1].id]).update(date_done=timezone.now() - timedelta(hours=25))
    output = cleanup("--batch-size", "1")
    assert "Deleted 2 Celery result rows older than 1d (CELERY_RESULT_EXPIRES)." in output
    assert list(TaskResult.objects.values_list("id", flat=True)) == [rows[2].id]


def test_batch_size(jobs):
    more = [old("succeeded", days=50 + index) for index in range(5)]
    output = cleanup("--batch-size", "2", "--older-than", "30d")
    assert count(output, "succeeded") == 1 + len(more)
    assert (count(output, "failed"), count(output, "revoked")) == (2, 1)


def test_a_status_kept_forever_is_reported(settings, jobs):
    settings.JOB_RETENTION_FAILED = ""
    output = cleanup()
    assert "failed     kept forever (JOB_RETENTION_FAILED is empty or 0)" in output
    assert count(output, "total") == 2
    assert jobs["old_failed"].id in remaining()


def test_result_rows_kept_forever_are_reported(settings):
    settings.CELERY_RESULT_EXPIRES = timedelta(0)
    assert "Celery result rows are kept forever (CELERY_RESULT_EXPIRES is 0)." in cleanup()


@pytest.mark.parametrize("duration", ["30x", "-1d", "", "0d", "30", "1.5d", "d"])
def test_a_bad_duration_is_refused_and_nothing_is_deleted(jobs, duration):
    before = remaining()
    message = refused(f"--older-than={duration}")
    assert message.startswith(f"--older-than: {duration!r} is not a duration") or "is zero" in message
    assert remaining() == before


@pytest.mark.parametrize("status", ["pending", "running"])
def test_active_statuses_are_refused_and_nothing_is_deleted(jobs, status):
    before = remaining()
    message = refused("--older-than", "1d", "--status", "succeeded", status)
    assert message == (
        f"--status: {status} jobs are active and are never deleted; "
        "only finished jobs (succeeded, failed, revoked, expired) are."
    )
    assert remaining() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--status", "done"), "--status: unknown status 'done'; choose from succeeded, failed, revoked, expired."),
        (("--batch-size", "0"), "--batch-size: must be a whole number from 1 to 10,000, got 0."),
        (("--batch-size", "100000"), "--batch-size: must be a whole number from 1 to 10,000, got 100000."),
        (("--batch-size", "many"), "--batch-size: 'many' is not a whole number."),
        (("--batch-size", "1.5"), "--batch-size: '1.5' is not a whole number."),
    ],
)
def test_bad_options_are_refused_and_nothing_is_deleted(jobs, args, message):
    before = remaining()
    assert refused(*args) == message
    assert remaining() == before


def test_a_bad_retention_setting_is_refused_naming_it(settings, jobs):
    settings.JOB_RETENTION_SUCCEEDED = "a month"
    before = remaining()
    assert refused().startswith("JOB_RETENTION_SUCCEEDED: 'a month' is not a duration")
    assert remaining() == before


def test_help_describes_every_option():
    text = load_command_class("jobs", "cleanup_jobs").create_parser("manage.py", "cleanup_jobs").format_help()
    for option in ("--older-than", "--status", "--dry-run", "--batch-size", "never pending or running"):
        assert option in text
    assert "Examples:\n  manage.py cleanup_jobs --dry-run\n  manage.py cleanup_jobs --older-than 30d" in text


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    command = [sys.executable, "manage.py", "cleanup_jobs", *args]
    return subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.django_db(transaction=True)
def test_as_a_real_process_exit_status_tells_the_outcome():
    doomed, kept = old("succeeded", days=40), old("pending", days=400)
    bad = run("--older-than", "30x")
    assert bad.returncode == 2, bad.stderr
    assert "--older-than: '30x' is not a duration" in bad.stderr
    active = run("--status", "pending")
    assert active.returncode == 2 and "--status: pending jobs are active" in active.stderr
    assert remaining() == {doomed.id, kept.id}
    good = run("--older-than", "30d")
    assert good.returncode == 0, good.stderr
    assert re.search(r"succeeded +older than 30d +1\n", good.stdout), good.stdout
    assert set(Job.objects.values_list("id", flat=True)) == {kept.id}
