"""The JobScheduler (in-process, as beat runs it) and what users cannot do to beat.

Beat writes its own entries (CELERY_BEAT_SCHEDULE) into the periodic task table by name when it
starts; a user's schedule holding such a name must stay the user's, and the maintenance entry
must still run. A schedule failing at every firing is logged once per period, not every firing.
"""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs.models import JobSchedule
from jobs.schedules.scheduler import JobScheduler
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.celery import app as celery_app

from .conftest import url

pytestmark = pytest.mark.django_db(transaction=True)  # the scheduler commits as beat does

ROLLUP = "taskhub-rollup-metrics"


def users_schedule_named(name: str, owner, *, enabled: bool = True) -> PeriodicTask:
    """A user's schedule as stored before names were per owner (or written by an old admin)."""
    periodic_task = PeriodicTask.objects.create(
        name=name,
        task=LONG_RUNNING_TASK,
        kwargs='{"seconds": 0}',
        enabled=enabled,
        interval=IntervalSchedule.objects.create(every=1, period="hours"),
    )
    JobSchedule.objects.create(periodic_task=periodic_task, owner=owner)
    return periodic_task


def test_beat_never_turns_a_users_schedule_into_a_maintenance_entry(user, user_client):
    assert not PeriodicTask.objects.filter(name=ROLLUP).exists()  # beat never ran here: a fresh deploy
    mine = users_schedule_named(ROLLUP, user, enabled=False)

    beat = JobScheduler(app=celery_app)  # beat's start: it writes CELERY_BEAT_SCHEDULE's entries

    mine.refresh_from_db()
    assert (mine.task, mine.job_schedule.owner, mine.enabled) == (LONG_RUNNING_TASK, user, False)
    assert mine.name == f"user:{user.pk}:{ROLLUP}"  # moved out of beat's namespace, shown as before
    assert user_client.get(url(mine.pk)).json()["name"] == ROLLUP
    housekeeping = PeriodicTask.objects.get(name=ROLLUP)
    assert housekeeping.task == "jobs.tasks.maintenance_tasks.rollup_metrics"
    assert housekeeping.enabled and not JobSchedule.objects.filter(periodic_task=housekeeping).exists()
    assert beat.schedule[ROLLUP].task == "jobs.tasks.maintenance_tasks.rollup_metrics"
    user_client.post(url(housekeeping.pk, "disable"))
    user_client.delete(url(housekeeping.pk))
    assert PeriodicTask.objects.get(name=ROLLUP).enabled


def test_beats_start_leaves_its_own_and_users_rows_alone(user):
    mine = users_schedule_named(f"user:{user.pk}:reports", user)
    JobScheduler(app=celery_app)
    before = {row["name"]: row for row in PeriodicTask.objects.values()}
    JobScheduler(app=celery_app)  # a restart
    after = {row["name"]: row for row in PeriodicTask.objects.values()}
    assert set(after) == set(before) >= {mine.name, ROLLUP, "taskhub-purge-jobs"}
    assert after[mine.name] == before[mine.name]


def owner_less_due_schedule(name: str) -> PeriodicTask:
    return PeriodicTask.objects.create(
        name=name,
        task=LONG_RUNNING_TASK,
        interval=IntervalSchedule.objects.create(every=2, period="seconds"),
        last_run_at=timezone.now() - timedelta(seconds=3),
    )


def errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_failing_schedule_is_logged_once_per_period_not_at_every_firing(published, caplog):
    owner_less_due_schedule("legacy")
    owner_less_due_schedule("legacy 2")
    beat = JobScheduler(app=celery_app)

    for _ in range(5):
        beat.apply_entry(beat.schedule["legacy"], producer=None)
    beat.apply_entry(beat.schedule["legacy 2"], producer=None)

    logged = errors(caplog)
    assert len(logged) == 2, logged  # once per schedule
    assert "'legacy'" in logged[0] and "has no owner" in logged[0] and "'legacy 2'" in logged[1]
    assert beat.error_log_interval == 300  # seconds, the default
    caplog.clear()
    beat.error_log_interval = 0  # the period is over
    beat.apply_entry(beat.schedule["legacy"], producer=None)
    assert len(errors(caplog)) == 1 and "4 more failures since" in errors(caplog)[0], errors(caplog)
    assert published == []


def test_plain_users_cannot_see_or_change_beats_entries(user_client):
    JobScheduler(app=celery_app)
    for housekeeping in PeriodicTask.objects.filter(name__startswith="taskhub-"):
        assert user_client.get(url(housekeeping.pk)).status_code == 404
        assert user_client.post(url(housekeeping.pk, "disable")).status_code == 404
