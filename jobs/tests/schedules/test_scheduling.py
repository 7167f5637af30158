"""Firing schedules (jobs.schedules.firing, the JobScheduler in-process); the schedule page is
tested in admin/test_admin_schedules.py.

The real beat process is tested in test_schedules_beat.py; here the scheduler's entries are
applied directly, as beat's tick does, against the real database.
"""

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from jobs.models import Job, JobStatus
from jobs.schedules import firing
from jobs.schedules.firing import job_schedule_fire, schedule_slot
from jobs.schedules.scheduler import JobScheduler
from jobs.schedules.services import job_schedule_create
from jobs.tests.factories import LONG_RUNNING_TASK, timeline
from taskhub.celery import app as celery_app
from taskhub.errors import ApplicationError, InvalidInput

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
EVERY_2S = {"every": 2, "period": "seconds"}


@pytest.fixture
def schedule(user) -> PeriodicTask:
    user.is_staff = True  # a schedule every 2 s: users who are not staff wait at least 60 s (the default)
    user.save(update_fields=["is_staff"])
    return job_schedule_create(
        owner=user, name="every 2s", task=LONG_RUNNING_TASK, kwargs={"seconds": 0}, interval=EVERY_2S
    )


def fire(periodic_task: PeriodicTask, last_run_at: datetime, fired_at: datetime | None = None):
    return job_schedule_fire(periodic_task_id=periodic_task.pk, last_run_at=last_run_at, fired_at=fired_at)


def test_a_firing_creates_a_tracked_job_of_its_schedule(schedule, user, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        firing = fire(schedule, last_run_at=T0 + timedelta(seconds=0.3))

    job = firing.job
    assert firing.slot == T0 + timedelta(seconds=2)
    assert (job.schedule_id, job.scheduled_for, job.owner, job.name) == (schedule.pk, firing.slot, user, "every 2s")
    assert (job.celery_task_name, job.kwargs, job.status) == (LONG_RUNNING_TASK, {"seconds": 0}, JobStatus.PENDING)
    assert "by a schedule" in timeline(job, "created")[0].message
    assert [message["id"] for message in published] == [str(job.id)]  # sent after commit like any job


def test_one_slot_fires_one_job_whoever_fires_it(schedule, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = fire(schedule, last_run_at=T0 + timedelta(seconds=0.1))
        # A second beat whose last run was a little later computes the same slot.
        second = fire(schedule, last_run_at=T0 + timedelta(seconds=1.7))
        following = fire(schedule, last_run_at=T0 + timedelta(seconds=2.1))

    assert first.job is not None and second.job is None and second.skipped == "slot already fired"
    assert second.slot == first.slot
    assert following.slot == first.slot + timedelta(seconds=2) and following.job is not None
    assert Job.objects.count() == 2 and len(published) == 2


def test_the_constraint_holds_when_the_check_is_raced(schedule, monkeypatch):
    """Two beats that both pass the existence check: the database refuses the second insert."""
    create = firing._create

    def lose_the_race(periodic_task, job_schedule, *, slot):
        create(periodic_task, job_schedule, slot=slot)  # the other beat's insert lands first
        return create(periodic_task, job_schedule, slot=slot)

    monkeypatch.setattr(firing, "_create", lose_the_race)
    second = fire(schedule, last_run_at=T0)
    assert second.job is None and second.skipped == "slot already fired"
    assert Job.objects.filter(schedule=schedule).count() == 1


def test_interval_slots_follow_the_start_time():
    start = T0 + timedelta(minutes=7)
    periodic_task = PeriodicTask(interval=IntervalSchedule(every=1, period="hours"), start_time=start)
    # First firing (beat backdates a new entry's last run by years): the start time itself.
    assert schedule_slot(periodic_task, last_run_at=T0 - timedelta(days=9000), now=start) == start
    later = start + timedelta(hours=5, minutes=1)
    assert schedule_slot(periodic_task, last_run_at=later, now=later) == start + timedelta(hours=6)


def test_crontab_slots_are_the_matching_minute_in_the_schedules_time_zone():
    crontab = CrontabSchedule(minute="30", hour="9", timezone="Europe/Paris")
    periodic_task = PeriodicTask(crontab=crontab)
    nine_thirty_paris = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    for last_run_at in (T0, T0 + timedelta(hours=3, seconds=7)):  # two beats, different last runs
        assert schedule_slot(periodic_task, last_run_at=last_run_at, now=nine_thirty_paris) == nine_thirty_paris


def test_a_disabled_or_deleted_schedule_fires_nothing(schedule, published):
    PeriodicTask.objects.filter(pk=schedule.pk).update(enabled=False)
    assert fire(schedule, last_run_at=T0).skipped == "disabled"
    schedule_id = schedule.pk
    schedule.delete()
    with pytest.raises(ApplicationError, match="not found"):
        job_schedule_fire(periodic_task_id=schedule_id, last_run_at=T0)
    assert Job.objects.count() == 0 and published == []


def test_arguments_that_no_longer_fit_are_refused_at_firing(schedule, published):
    PeriodicTask.objects.filter(pk=schedule.pk).update(kwargs=json.dumps({"seconds": "a while"}))
    with pytest.raises(InvalidInput, match="seconds"):
        fire(schedule, last_run_at=T0)
    assert Job.objects.count() == 0 and published == []


def test_an_inactive_owners_schedule_fires_nothing(schedule, user):
    user.is_active = False
    user.save()
    with pytest.raises(ApplicationError, match="inactive"):
        fire(schedule, last_run_at=T0)
    assert Job.objects.count() == 0


def scheduler() -> JobScheduler:
    return JobScheduler(app=celery_app)


# The scheduler commits and closes connections as beat does: these tests run outside a transaction.
in_beat = pytest.mark.django_db(transaction=True)


@in_beat
def test_two_schedulers_fire_a_due_entry_once(schedule, published, django_capture_on_commit_callbacks):
    PeriodicTask.objects.filter(pk=schedule.pk).update(last_run_at=timezone.now() - timedelta(seconds=3))
    first, second = scheduler(), scheduler()

    with django_capture_on_commit_callbacks(execute=True):
        for beat in (first, second):
            entry = beat.schedule[schedule.name]
            assert entry.is_due().is_due
            beat.apply_entry(entry, producer=None)

    # One job for the due slot (and, when the 2 s grid passed a slot since the schedule was made, one
    # for that slot too, fired by the second beat's catch-up): never two for one slot.
    jobs = list(Job.objects.filter(schedule=schedule).order_by("scheduled_for"))
    assert 1 <= len(jobs) <= 2 and len({job.scheduled_for for job in jobs}) == len(jobs)
    assert [message["id"] for message in published] == [str(job.id) for job in jobs]  # their own messages only


@in_beat
def test_an_owner_less_catalog_task_is_logged_and_sends_nothing(published, caplog):
    PeriodicTask.objects.create(
        name="legacy",
        task=LONG_RUNNING_TASK,
        interval=IntervalSchedule.objects.create(**EVERY_2S),
        last_run_at=timezone.now() - timedelta(seconds=3),
    )
    beat = scheduler()
    beat.apply_entry(beat.schedule["legacy"], producer=None)
    assert "has no owner: open it in the admin and save it" in caplog.text
    assert Job.objects.count() == 0 and published == []


@in_beat
def test_maintenance_entries_keep_celerys_path(published):
    beat = scheduler()
    beat.apply_entry(beat.schedule["taskhub-dispatch-jobs"], producer=beat.producer)
    assert [message["task"] for message in published] == ["jobs.tasks.maintenance_tasks.dispatch_jobs"]
    assert Job.objects.count() == 0


@in_beat
def test_beats_bookkeeping_does_not_undo_a_disable(schedule):
    beat = scheduler()
    entry = beat.schedule[schedule.name]
    PeriodicTask.objects.filter(pk=schedule.pk).update(enabled=False)  # an operator, meanwhile
    next(entry).save()
    stored = PeriodicTask.objects.get(pk=schedule.pk)
    assert stored.enabled is False and stored.total_run_count == 1


EVERY_5S = {"every": 5, "period": "seconds"}


@pytest.fixture
def every_5s(user) -> PeriodicTask:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return job_schedule_create(
        owner=user, name="every 5s", task=LONG_RUNNING_TASK, kwargs={"seconds": 0}, interval=EVERY_5S
    )


def grid_after_now() -> datetime:
    """A slot of the 5-second grid a minute ahead: after the schedule's creation (its date_changed)."""
    now = timezone.now() + timedelta(minutes=1)
    return now.replace(microsecond=0) - timedelta(seconds=now.second % 5)


def fired_slots(periodic_task) -> list[datetime]:
    return list(
        Job.objects.filter(schedule=periodic_task).order_by("scheduled_for").values_list("scheduled_for", flat=True)
    )


def test_two_beats_a_period_late_fire_every_slot_once(every_5s):
    """Issue 23, scenario 5 on RabbitMQ: both beats tick a whole period late; each computes the slot
    after its own last run, so the slot between was fired by nobody. It is fired now, exactly once."""
    t, s = grid_after_now(), timedelta(seconds=1)
    beats = {"a": t - 4.8 * s, "b": t - 4.6 * s}  # each beat's last run
    for tick in (0.2, 10.3, 15.3):  # beat a ticks at t + tick, beat b 0.2 s after it; 10.3: a period late
        for offset, beat in ((0.0, "a"), (0.2, "b")):
            fired_at = t + (tick + offset) * s
            fire(every_5s, last_run_at=beats[beat], fired_at=fired_at)
            beats[beat] = fired_at
    assert fired_slots(every_5s) == [t + n * 5 * s for n in range(4)]  # every slot, each once


def test_after_a_long_outage_the_catch_up_window_fires_its_slots_and_records_the_rest(every_5s, caplog):
    """Beat down an hour (JOB_SCHEDULE_CATCH_UP_SECONDS, 300 by default): the beat's own due slot
    (Celery's one firing for a missed period), every slot of the last 5 minutes, the others skipped and logged."""
    t, s = grid_after_now(), timedelta(seconds=1)
    fire(every_5s, last_run_at=t - 4.9 * s, fired_at=t + 0.1 * s)
    now = t + 3600.1 * s
    firing_ = fire(every_5s, last_run_at=t + 0.1 * s, fired_at=now)
    window = [t + n * 5 * s for n in range((3600 - 300) // 5 + 1, 3600 // 5 + 1)]  # t + 3305 s ... t + 3600 s
    assert fired_slots(every_5s) == [t, t + 5 * s, *window]
    assert firing_.slot == t + 5 * s and firing_.job is not None
    assert [job.scheduled_for for job in firing_.caught_up] == window
    assert firing_.skipped_slots == (3305 - 10) // 5  # t + 10 s ... t + 3300 s, not fired
    assert "not fired" in caplog.text and str(firing_.skipped_slots) in caplog.text


def test_no_catch_up_for_slots_before_the_schedule_was_last_changed(every_5s):
    """A schedule disabled, then enabled again (or edited): the slots it missed meanwhile are not fired."""
    t, s = grid_after_now(), timedelta(seconds=1)
    fire(every_5s, last_run_at=t - 4.9 * s, fired_at=t + 0.1 * s)
    PeriodicTask.objects.filter(pk=every_5s.pk).update(date_changed=t + 60 * s)
    fire(every_5s, last_run_at=t + 62 * s, fired_at=t + 67.1 * s)
    assert fired_slots(every_5s) == [t, t + 60 * s, t + 65 * s]


def test_a_catch_up_of_zero_seconds_is_celerys_one_firing(every_5s, settings):
    settings.JOB_SCHEDULE_CATCH_UP_SECONDS = 0
    t, s = grid_after_now(), timedelta(seconds=1)
    fire(every_5s, last_run_at=t - 4.8 * s, fired_at=t + 0.2 * s)
    fire(every_5s, last_run_at=t + 0.2 * s, fired_at=t + 10.3 * s)
    assert fired_slots(every_5s) == [t, t + 5 * s]


def test_a_crontab_a_minute_late_fires_the_minute_between(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    periodic_task = job_schedule_create(
        owner=user, name="each minute", task=LONG_RUNNING_TASK, kwargs={"seconds": 0}, crontab={"minute": "*"}
    )
    t = (timezone.now() + timedelta(minutes=2)).replace(second=0, microsecond=0)
    fire(periodic_task, last_run_at=t - timedelta(seconds=59), fired_at=t + timedelta(seconds=1))
    fire(periodic_task, last_run_at=t + timedelta(seconds=1), fired_at=t + timedelta(minutes=2, seconds=1))
    assert fired_slots(periodic_task) == [t, t + timedelta(minutes=1), t + timedelta(minutes=2)]


def test_a_changed_interval_catches_up_on_its_own_grid(every_5s):
    """From 5 s to 7 s: the slots after the change are the 7-second grid's, not the last slot plus 7 s."""
    t, s = grid_after_now(), timedelta(seconds=1)
    fire(every_5s, last_run_at=t - 4.9 * s, fired_at=t + 0.1 * s)
    seven = IntervalSchedule.objects.create(every=7, period="seconds")
    PeriodicTask.objects.filter(pk=every_5s.pk).update(interval=seven, date_changed=t + 1 * s)
    every_7s = PeriodicTask.objects.get(pk=every_5s.pk)
    fire(every_7s, last_run_at=t + 23 * s, fired_at=t + 30.1 * s)  # due at t + 30 s
    # The 7-second grid from the change on, the change's own instant included: one slot in seven lands on
    # it exactly (t + 1 s), and is fired (it failed a CI run when the first slot was taken strictly after).
    first = math.ceil((t + s - firing.EPOCH) / (7 * s))
    grid = [firing.EPOCH + 7 * s * n for n in range(first, first + 6)]
    expected = [t, *(slot for slot in grid if slot <= t + 30.1 * s)]
    assert fired_slots(every_5s) == expected and len(expected) >= 4
