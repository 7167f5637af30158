"""A schedule's firing becomes a tracked job, once per slot however many beats fire it.

The slot is the time the firing was due, rounded to the schedule: an interval's grid (counted
from the schedule's start time, else the Unix epoch), a crontab's matching minute, a clocked
schedule's time. ``Job`` has a unique (schedule, scheduled_for) constraint, so when a second
beat process fires the same slot, its insert fails and nothing is sent.

A beat computes its slot from its own last run, so a beat a period late would never fire the slot
between (issue 23: two beats both late skipped it). A firing therefore also starts from the
schedule's last fired slot (its newest job's ``scheduled_for``) and fires every slot after it up to
now (an interval's or a crontab's), each once, going back at most ``JOB_SCHEDULE_CATCH_UP_SECONDS``
and never before the schedule was last changed (``date_changed``: enabled again, edited). Older
slots are not fired: their count is logged and kept on the ``Firing``. The beat's own slot is fired
as before (Celery's one firing for a missed period).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from celery.utils.time import maybe_make_aware
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from taskhub.errors import ApplicationError, NotFound

from ..models import Job, JobSchedule
from ..services.creation import job_create
from .fields import display_name

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Firing:
    """What one firing did: the job it created, or why it created none."""

    periodic_task_id: int
    slot: datetime | None = None
    job: Job | None = None
    skipped: str = ""
    caught_up: tuple[Job, ...] = ()  # the jobs of missed slots fired with it, oldest first
    skipped_slots: int = 0  # missed slots older than the catch-up window or the last change: not fired


CATCH_UP_MAX_SLOTS = 10_000  # a crontab's slots looked at in one catch-up (a week of minutes)


def schedule_slot(periodic_task: PeriodicTask, *, last_run_at: datetime, now: datetime) -> datetime:
    """The slot of a firing at ``now`` by a beat whose previous firing was ``last_run_at``.

    The firing was due one period after the later of ``last_run_at`` and the start time. Two
    beats compute the same slot for the same due time: an interval is floored onto a fixed
    grid, a crontab's next match after ``last_run_at`` is an exact minute.
    """
    last_run_at = maybe_make_aware(last_run_at)
    start_time = periodic_task.start_time
    if periodic_task.clocked:
        return periodic_task.clocked.clocked_time
    schedule = periodic_task.schedule
    if periodic_task.interval:
        every = schedule.run_every
        due = max(last_run_at + every, start_time or last_run_at)
        anchor = start_time or EPOCH
        return anchor + every * ((due - anchor) // every)
    since = max(last_run_at, start_time) if start_time else last_run_at
    if isinstance(schedule, crontab):
        start, delta, _ = schedule.remaining_delta(since)
        return (start + delta).astimezone(UTC).replace(second=0, microsecond=0)
    # Solar (sunrise...): the event's time, to the minute (its estimate varies by microseconds).
    due = now + schedule.remaining_estimate(since)
    return (due.astimezone(UTC) + timedelta(seconds=30)).replace(second=0, microsecond=0)


def _schedule_of(periodic_task_id: int) -> tuple[PeriodicTask, JobSchedule]:
    related = ("job_schedule__owner", "interval", "crontab", "solar", "clocked")
    periodic_task = PeriodicTask.objects.select_related(*related).filter(pk=periodic_task_id).first()
    if periodic_task is None:
        raise NotFound(f"Schedule {periodic_task_id} not found.")
    schedule = getattr(periodic_task, "job_schedule", None)
    if schedule is None:
        raise ApplicationError(
            f"Periodic task {periodic_task.name!r} runs catalog task {periodic_task.task} but has no owner: open it "
            "in the admin and save it (you become its owner), or create it through /api/v1/schedules/.",
            code="schedule_without_owner",
        )
    if not schedule.owner.is_active:
        raise ApplicationError(
            f"Schedule {display_name(periodic_task)!r} belongs to {schedule.owner.username}, "
            "whose account is inactive.",
            code="owner_inactive",
        )
    return periodic_task, schedule


def _create(periodic_task: PeriodicTask, schedule: JobSchedule, *, slot: datetime | None) -> Job:
    return job_create(
        owner=schedule.owner,
        celery_task_name=periodic_task.task,
        name=display_name(periodic_task)[:200],
        args=json.loads(periodic_task.args or "[]"),
        kwargs=json.loads(periodic_task.kwargs or "{}"),
        priority=schedule.priority,
        expires_in=schedule.expires_in,  # the deadline counts from this firing
        unique=schedule.unique,
        # The schedule's own rule; without one, the task's (job_build_spec).
        concurrency={"key": schedule.concurrency_key, "limit": schedule.concurrency_limit}
        if schedule.concurrency_key is not None
        else None,
        schedule_id=periodic_task.pk,
        scheduled_for=slot,
    )


def _missed_slots(periodic_task: PeriodicTask, *, own: datetime, now: datetime) -> tuple[list[datetime], int]:
    """The slots after the schedule's last fired one up to ``now`` that are to be fired (within the
    catch-up window, after the last change), and how many older ones are not (the beat's own
    slot ``own``, fired anyway, apart)."""
    if periodic_task.clocked or not (periodic_task.interval or periodic_task.crontab):
        return [], 0
    last = Job.objects.filter(schedule_id=periodic_task.pk).aggregate(last=Max("scheduled_for"))["last"]
    if last is None:  # never fired: the beat's own slot only
        return [], 0
    since = max(now - timedelta(seconds=settings.JOB_SCHEDULE_CATCH_UP_SECONDS), periodic_task.date_changed)
    if periodic_task.start_time:
        since = max(since, periodic_task.start_time)
    if periodic_task.interval:
        # On the schedule's grid (its interval may have changed since ``last``), as schedule_slot.
        every = periodic_task.schedule.run_every
        anchor = periodic_task.start_time or EPOCH
        start = anchor + every * ((last - anchor) // every + 1)  # the grid's first slot after last
        first = max(start, anchor - every * ((anchor - since) // every))  # and not before since
        skipped = (first - start) // every  # slots in [start, first)
        count = max(0, (now - first) // every + 1)
        return [first + every * n for n in range(count)], skipped - (start <= own < first)
    slots, skipped, slot = [], 0, last
    for _ in range(CATCH_UP_MAX_SLOTS):
        slot = schedule_slot(periodic_task, last_run_at=slot, now=now)
        if slot > now:
            break
        if slot < since:
            skipped += slot != own
        else:
            slots.append(slot)
    return slots, skipped


def _fire_slot(periodic_task: PeriodicTask, schedule: JobSchedule, *, slot: datetime) -> Job | None:
    """The slot's job, or None when it has one already (checked, then the unique constraint)."""
    taken = Job.objects.filter(schedule_id=periodic_task.pk, scheduled_for=slot)
    if taken.exists():
        return None
    try:
        return _create(periodic_task, schedule, slot=slot)
    except IntegrityError:
        if not taken.exists():
            raise
        return None


def job_schedule_fire(*, periodic_task_id: int, last_run_at: datetime, fired_at: datetime | None = None) -> Firing:
    """Create the job of one firing (beat calls this instead of publishing the task).

    Nothing happens for a schedule disabled or deleted since beat last read it, or for a slot
    that already has its job. The job is checked like any other (``job_create``): a task or
    arguments that no longer fit raise InvalidInput, as does an owner-less schedule.
    """
    periodic_task, schedule = _schedule_of(periodic_task_id)
    if not periodic_task.enabled:
        return Firing(periodic_task_id, skipped="disabled")
    now = fired_at or timezone.now()
    slot = schedule_slot(periodic_task, last_run_at=last_run_at, now=now)
    missed, skipped = _missed_slots(periodic_task, own=slot, now=now)
    if skipped:
        logger.warning(
            "Schedule %r: %s missed slots not fired (older than JOB_SCHEDULE_CATCH_UP_SECONDS=%s "
            "or than the schedule's last change); firing the slots since.",
            display_name(periodic_task),
            skipped,
            settings.JOB_SCHEDULE_CATCH_UP_SECONDS,
        )
    job, caught_up, deduplicated = None, [], ""
    for each in sorted({slot, *missed}):
        created = _fire_slot(periodic_task, schedule, slot=each)
        if created is not None and created.dedupe_outcome not in (None, "cancelled_running"):
            # The schedule's rule: e.g. the last firing's job still runs, so this slot is skipped.
            if each == slot:
                job, deduplicated = created, f"deduplicated ({created.dedupe_outcome})"
            continue
        if each == slot:
            job = created
        elif created is not None:
            caught_up.append(created)
    return Firing(
        periodic_task_id,
        slot=slot,
        job=job,
        skipped=deduplicated or ("" if job is not None else "slot already fired"),
        caught_up=tuple(caught_up),
        skipped_slots=skipped,
    )


def job_schedule_run_now(*, periodic_task_id: int) -> Job:
    """A job of the schedule, now, outside its slots (also when the schedule is disabled)."""
    periodic_task, schedule = _schedule_of(periodic_task_id)
    return _create(periodic_task, schedule, slot=None)
