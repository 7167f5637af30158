"""Schedules: periodic jobs stored by django-celery-beat, owned and checked like jobs.

A schedule is django-celery-beat's ``PeriodicTask`` (task, arguments, interval or crontab,
window) plus a :class:`~jobs.models.JobSchedule` row (owner, priority) sharing its id. Its
task and arguments are checked exactly as a job's (``job_build_spec``) whenever it is saved,
so a schedule that could not create its jobs is refused at once rather than failing at every
firing. Each firing becomes a tracked job through ``job_create``: see :mod:`.firing`.

A user's schedules are bounded so that one user cannot load beat or the API for everyone:
at most ``JOB_SCHEDULE_MAX_PER_USER`` of them (429), names and descriptions of bounded length,
and, for users who are not staff, intervals of at least ``JOB_SCHEDULE_MIN_INTERVAL_SECONDS``.
Names are per owner and beat's own names are reserved: see :mod:`.fields`.
"""

from __future__ import annotations

import json
from typing import Any, Unpack

from django.conf import settings
from django.db import IntegrityError, transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from accounts.models import User
from taskhub.errors import ApplicationError, NotFound

from ..models import JobSchedule
from ..services.creation import JobSpec
from ..unique import unique_rule
from .checks import (
    ScheduleRequest,
    check_description,
    check_expires_in,
    check_window,
    invalid,
    is_system_task,
    job_schedule_check,
    job_schedule_check_name,
    job_schedule_check_timing,
    system_tasks,
)


class ScheduleLimitReached(ApplicationError):
    code = "schedule_limit"
    status_code = 429


def _check_room(owner: User) -> None:
    """Refuse (429) a schedule over ``JOB_SCHEDULE_MAX_PER_USER``; call in the writing transaction.
    The owner's row is locked first, so two concurrent creations cannot both take the last place."""
    limit = settings.JOB_SCHEDULE_MAX_PER_USER
    if not limit:
        return
    User.objects.select_for_update().filter(pk=owner.pk).exists()
    count = JobSchedule.objects.filter(owner=owner).count()
    if count >= limit:
        raise ScheduleLimitReached(
            f"Schedule limit reached: at most {limit} schedules per user (JOB_SCHEDULE_MAX_PER_USER); you have "
            f"{count}. Delete one you no longer need."
        )


def _timing_rows(timing: dict[str, Any]) -> dict[str, Any]:
    """The shared IntervalSchedule / CrontabSchedule rows for a checked timing (reused when equal)."""
    if "interval" in timing:
        interval = IntervalSchedule.objects.filter(**timing["interval"]).order_by("id").first()
        return {"interval": interval or IntervalSchedule.objects.create(**timing["interval"]), "crontab": None}
    crontab = CrontabSchedule.objects.filter(**timing["crontab"]).order_by("id").first()
    return {"interval": None, "crontab": crontab or CrontabSchedule.objects.create(**timing["crontab"])}


def _save(periodic_task: PeriodicTask) -> None:
    """Save, turning a lost race for the unique name into the same 400 as the check."""
    try:
        with transaction.atomic():
            periodic_task.save()
    except IntegrityError:
        if PeriodicTask.objects.filter(name=periodic_task.name).exclude(pk=periodic_task.pk).exists():
            name = periodic_task.name.split(":", 2)[-1]
            raise invalid("name", f"The owner already has a schedule named {name!r}.", "duplicate_name") from None
        raise


def job_schedule_create(*, owner: User, **request: Unpack[ScheduleRequest]) -> PeriodicTask:
    """Store a schedule owned by ``owner``; everything is checked before anything is written."""
    spec = job_schedule_check(
        owner=owner,
        task=request.get("task"),
        args=request.get("args"),
        kwargs=request.get("kwargs"),
        priority=request.get("priority"),
        unique=request.get("unique"),
        concurrency=request.get("concurrency"),
    )
    name = job_schedule_check_name(request.get("name"), owner=owner)
    description = check_description(request.get("description", ""))
    timing = job_schedule_check_timing(request, owner=owner, required=True)
    start_time, expires = request.get("start_time"), request.get("expires")
    check_window(start_time, expires)
    expires_in = check_expires_in(request.get("expires_in"))
    with transaction.atomic():
        _check_room(owner)
        periodic_task = PeriodicTask(
            name=name,
            task=spec.entry.name,
            args=json.dumps(spec.args),
            kwargs=json.dumps(spec.kwargs),
            enabled=request.get("enabled", True),
            one_off=request.get("one_off", False),
            start_time=start_time,
            expires=expires,
            description=description,
            **_timing_rows(timing),
        )
        _save(periodic_task)
        JobSchedule.objects.create(
            periodic_task=periodic_task,
            owner=owner,
            priority=spec.priority,
            expires_in=expires_in,
            unique=_rule(request.get("unique")),
            **_concurrency_row(request, spec),
        )
    return periodic_task


def _rule(unique: dict | None) -> dict | None:
    """A checked rule as stored (its explicit fields); None: the task's default, if any."""
    return None if unique is None else unique_rule(unique).as_dict()


def _locked(periodic_task_id: int) -> PeriodicTask:
    periodic_task = (
        PeriodicTask.objects.select_for_update(of=("self",))
        .select_related("job_schedule__owner")
        .filter(pk=periodic_task_id, job_schedule__isnull=False)
        .first()
    )
    if periodic_task is None:
        raise NotFound(f"Schedule {periodic_task_id} not found.")
    return periodic_task


@transaction.atomic
def job_schedule_update(*, periodic_task_id: int, **changes: Unpack[ScheduleRequest]) -> PeriodicTask:
    """Change a schedule; the result is checked as a whole (a new task must fit the kept arguments)."""
    periodic_task = _locked(periodic_task_id)
    schedule = periodic_task.job_schedule
    spec = job_schedule_check(
        owner=schedule.owner,
        task=changes.get("task", periodic_task.task),
        args=changes["args"] if "args" in changes else json.loads(periodic_task.args or "[]"),
        kwargs=changes["kwargs"] if "kwargs" in changes else json.loads(periodic_task.kwargs or "{}"),
        priority=changes["priority"] if "priority" in changes else schedule.priority,
        unique=changes["unique"] if "unique" in changes else schedule.unique,
        concurrency=changes["concurrency"] if "concurrency" in changes else schedule_concurrency(schedule),
    )
    if "name" in changes:
        periodic_task.name = job_schedule_check_name(
            changes["name"], owner=schedule.owner, periodic_task_id=periodic_task.pk
        )
    if "description" in changes:
        check_description(changes["description"])
    # Giving both as null (or neither in a replacement) leaves the schedule without timing: refused.
    timing = job_schedule_check_timing(
        changes, owner=schedule.owner, required="interval" in changes and "crontab" in changes
    )
    if changes.get("enabled", periodic_task.enabled) != periodic_task.enabled:
        periodic_task.last_run_at = None  # as job_schedule_set_enabled: no catch-up of the time it was off
    for field in ("start_time", "expires", "enabled", "one_off", "description"):
        if field in changes:
            setattr(periodic_task, field, changes[field])
    check_window(periodic_task.start_time, periodic_task.expires)
    if timing is not None:
        for field, row in _timing_rows(timing).items():
            setattr(periodic_task, field, row)
    periodic_task.task = spec.entry.name
    periodic_task.args, periodic_task.kwargs = json.dumps(spec.args), json.dumps(spec.kwargs)
    _save(periodic_task)
    schedule.priority = spec.priority
    update = ["priority"]
    if "expires_in" in changes:
        schedule.expires_in = check_expires_in(changes["expires_in"])
        update.append("expires_in")
    if "unique" in changes:
        schedule.unique = _rule(changes["unique"])
        update.append("unique")
    if "concurrency" in changes:
        for field, value in _concurrency_row(changes, spec).items():
            setattr(schedule, field, value)
            update.append(field)
    schedule.save(update_fields=update)
    return periodic_task


def schedule_concurrency(schedule: JobSchedule) -> dict[str, Any] | None:
    """A schedule's own concurrency rule, as a request gives it (None: its jobs get the task's own)."""
    if schedule.concurrency_key is None:
        return None
    return {"key": schedule.concurrency_key, "limit": schedule.concurrency_limit}


def _concurrency_row(request: ScheduleRequest, spec: JobSpec) -> dict[str, Any]:
    """The schedule's columns for the rule its request named (checked in ``spec``): the task's own
    default is not stored, each firing applies it (then current)."""
    rule = spec.concurrency if request.get("concurrency") is not None else None
    return {"concurrency_key": rule and rule.key, "concurrency_limit": rule and rule.limit}


@transaction.atomic
def job_schedule_set_enabled(*, periodic_task_id: int, enabled: bool) -> PeriodicTask:
    """Turn a schedule on or off. Either way its last run is forgotten, so an enabled schedule
    counts its first interval from now instead of catching up on the time it was off."""
    periodic_task = _locked(periodic_task_id)
    periodic_task.enabled = enabled
    periodic_task.last_run_at = None
    periodic_task.save()
    return periodic_task


def job_schedule_delete(*, periodic_task_id: int) -> None:
    """Delete a schedule; its jobs stay, no longer linked (``Job.schedule`` is set to NULL)."""
    with transaction.atomic():
        _locked(periodic_task_id).delete()


def job_schedule_adopt(*, periodic_task_id: int, owner: User) -> PeriodicTask:
    """Give an owner to a periodic task of a catalog task that has none (made in the shell, or
    before schedules had owners): its firings then create ``owner``'s jobs. Call in the
    transaction that then saves it with ``job_schedule_update``, so a refused update adopts nothing."""
    periodic_task = (
        PeriodicTask.objects.select_for_update(of=("self",))
        .filter(pk=periodic_task_id, job_schedule__isnull=True)
        .first()
    )
    if periodic_task is None:
        raise NotFound(f"Periodic task {periodic_task_id} without an owner not found.")
    JobSchedule.objects.create(periodic_task=periodic_task, owner=owner)
    return periodic_task


@transaction.atomic
def beat_entry_save(*, periodic_task_id: int | None, by: User, **request: Unpack[ScheduleRequest]) -> PeriodicTask:
    """Create or change one of beat's own entries (a maintenance task, sent as a plain Celery
    task, not a job): no owner and no catalog check, the same timing and window checks as a
    schedule's. Superusers only (``by``)."""
    if not by.is_superuser:
        raise ApplicationError(
            "Only superusers may change taskhub's maintenance tasks.", code="permission_denied", status_code=403
        )
    task = request.get("task") or ""
    if not is_system_task(task):
        raise invalid("task", f"{task!r} is not one of taskhub's maintenance tasks ({', '.join(system_tasks())}).")
    name = request.get("name").strip() if isinstance(request.get("name"), str) else ""
    if not name or len(name) > 200:
        raise invalid("name", "Give the entry a name of at most 200 characters.")
    args, kwargs = request.get("args") or [], request.get("kwargs") or {}
    if not isinstance(args, list):
        raise invalid("args", "Must be a JSON array.")
    if not isinstance(kwargs, dict):
        raise invalid("kwargs", "Must be a JSON object.")
    description = check_description(request.get("description", ""))
    timing = job_schedule_check_timing(request, owner=by, required=True)
    check_window(request.get("start_time"), request.get("expires"))
    if periodic_task_id is None:
        periodic_task = PeriodicTask()
    else:
        periodic_task = (
            PeriodicTask.objects.select_for_update(of=("self",))
            .filter(pk=periodic_task_id, job_schedule__isnull=True)
            .first()
        )
        if periodic_task is None:
            raise NotFound(f"Maintenance entry {periodic_task_id} not found.")
    if PeriodicTask.objects.filter(name=name).exclude(pk=periodic_task.pk).exists():
        raise invalid("name", f"An entry named {name!r} already exists.", code="duplicate_name")
    if request.get("enabled", True) != periodic_task.enabled:
        periodic_task.last_run_at = None
    periodic_task.name, periodic_task.task, periodic_task.description = name, task, description
    periodic_task.args, periodic_task.kwargs = json.dumps(args), json.dumps(kwargs)
    for field in ("enabled", "one_off", "start_time", "expires"):
        setattr(periodic_task, field, request.get(field, PeriodicTask._meta.get_field(field).get_default()))
    for field, row in _timing_rows(timing).items():
        setattr(periodic_task, field, row)
    periodic_task.solar = periodic_task.clocked = None
    _save(periodic_task)
    return periodic_task
