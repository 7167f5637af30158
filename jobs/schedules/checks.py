"""A schedule's request checked before anything is written: its task and arguments (as a job's),
its timing (interval or crontab, with the owner's minimum interval), name, description, window and
deadline. The API, the admin's schedule page and its live preview check with these; :mod:`.services`
writes what they accept.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import cache
from typing import Any, TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError
from django_celery_beat import validators
from django_celery_beat.models import PeriodicTask

from accounts.models import User
from taskhub.errors import ApplicationError, InvalidInput

from ..services.creation import JobSpec, job_build_spec, job_deadline
from .fields import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH, internal_name, is_reserved_name
from .timing import PERIOD_SECONDS

INTERVAL_PERIODS = ("days", "hours", "minutes", "seconds")
CRONTAB_FIELDS = {
    "minute": validators.minute_validator,
    "hour": validators.hour_validator,
    "day_of_week": validators.day_of_week_validator,
    "day_of_month": validators.day_of_month_validator,
    "month_of_year": validators.month_of_year_validator,
}
# Beat's own entries (settings.CELERY_BEAT_SCHEDULE, Celery's result cleanup): not catalog
# tasks, so they publish plain Celery messages; only superusers may edit them in the admin.
SYSTEM_TASK_PREFIXES = ("jobs.tasks.maintenance_tasks.",)


class ScheduleRequest(TypedDict, total=False):
    """A schedule as clients give it (the API's body; every key optional on update)."""

    name: str
    task: str
    args: list | None
    kwargs: dict | None
    priority: str | None
    concurrency: dict[str, Any] | None
    interval: dict[str, Any] | None
    crontab: dict[str, Any] | None
    enabled: bool
    start_time: datetime | None
    expires: datetime | None
    one_off: bool
    description: str
    expires_in: int | None
    unique: dict | None


def invalid(field: str, message: str, code: str = "invalid") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, fields={field: [message]})


def system_tasks() -> list[str]:
    """The tasks beat runs for taskhub itself: its maintenance tasks and Celery's result cleanup."""
    return sorted({entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} | {"celery.backend_cleanup"})


def is_system_task(name: str) -> bool:
    """A task beat runs for taskhub itself (only superusers may schedule or change one)."""
    return name in system_tasks() or name.startswith(SYSTEM_TASK_PREFIXES)


def job_schedule_check(
    *,
    owner: User,
    task: str,
    args: Any,
    kwargs: Any,
    priority: str | None,
    unique: dict | None = None,
    concurrency: Any = None,
) -> JobSpec:
    """The task, arguments, priority, uniqueness rule and concurrency rule checked as a job's would be;
    errors name ``task``, not ``celery_task_name``. Tasks outside the catalog (maintenance tasks too)
    are refused."""
    try:
        return job_build_spec(
            owner=owner,
            celery_task_name=task,
            args=args,
            kwargs=kwargs,
            priority=priority,
            unique=unique,
            concurrency=concurrency,
        )
    except ApplicationError as exc:
        if "celery_task_name" not in exc.fields:
            raise
        fields = {("task" if name == "celery_task_name" else name): messages for name, messages in exc.fields.items()}
        message = exc.message.replace("celery_task_name:", "task:", 1)
        raise type(exc)(message, code=exc.code, status_code=exc.status_code, fields=fields) from exc


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_interval(value: dict[str, Any], *, owner: User) -> dict[str, Any]:
    every, period = value.get("every"), value.get("period")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise invalid("interval.every", "Must be a whole number, at least 1.")
    if period not in INTERVAL_PERIODS:
        raise invalid("interval.period", f"Must be one of {', '.join(INTERVAL_PERIODS)}.")
    minimum = settings.JOB_SCHEDULE_MIN_INTERVAL_SECONDS
    if not owner.is_staff and every * PERIOD_SECONDS[period] < minimum:
        message = f"Must be at least {minimum} seconds (JOB_SCHEDULE_MIN_INTERVAL_SECONDS); got {every} {period}."
        raise invalid("interval", message, code="interval_too_short")
    return {"every": every, "period": period}


def _check_crontab(value: dict[str, Any]) -> dict[str, Any]:
    checked = {}
    for field, validator in CRONTAB_FIELDS.items():
        spec = value.get(field, "*")
        if not isinstance(spec, str) or not spec.strip():
            raise invalid(f"crontab.{field}", "Must be a crontab field such as '*', '5', '*/15' or '1-5'.")
        try:
            validator(spec)
        except ValidationError as exc:
            raise invalid(f"crontab.{field}", " ".join(exc.messages)) from exc
        checked[field] = spec.strip()
    tz = value.get("timezone") or settings.TIME_ZONE
    if tz not in _timezones():
        raise invalid("crontab.timezone", f"Unknown time zone {tz!r}: use an IANA name such as 'Europe/Paris'.")
    checked["timezone"] = tz
    return checked


def job_schedule_check_timing(request: ScheduleRequest, *, owner: User, required: bool) -> dict[str, Any] | None:
    """``{"interval": {...}}`` or ``{"crontab": {...}}``; None when neither is given and not required.
    The schedule page's preview checks the timing being typed with it too."""
    interval, crontab = request.get("interval"), request.get("crontab")
    if interval is not None and crontab is not None:
        message = "Give either interval or crontab, not both."
        raise InvalidInput(f"interval: {message}", fields={"interval": [message], "crontab": [message]})
    if interval is not None:
        return {"interval": _check_interval(interval, owner=owner)}
    if crontab is not None:
        return {"crontab": _check_crontab(crontab)}
    if required:
        message = "Give an interval ({every, period}) or a crontab."
        raise InvalidInput(f"interval: {message}", fields={"interval": [message], "crontab": [message]})
    return None


def job_schedule_check_name(name: Any, *, owner: User, periodic_task_id: int | None = None) -> str:
    """The stored (internal) name of ``owner``'s schedule named ``name``: unique per owner, not
    in beat's namespace, at most NAME_MAX_LENGTH characters (the admin checks with it too)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise invalid("name", "Give the schedule a name.")
    if len(name) > NAME_MAX_LENGTH:
        raise invalid("name", f"At most {NAME_MAX_LENGTH} characters; got {len(name)}.", code="max_length")
    if is_reserved_name(name):
        message = f"{name!r} is reserved for taskhub's own beat entries (taskhub-..., celery....): choose another."
        raise invalid("name", message, code="reserved_name")
    stored = internal_name(owner_id=owner.pk, name=name)
    if PeriodicTask.objects.filter(name=stored).exclude(pk=periodic_task_id).exists():
        raise invalid("name", f"{owner.username} already has a schedule named {name!r}.", code="duplicate_name")
    return stored


def check_description(description: Any) -> str:
    if len(description) > DESCRIPTION_MAX_LENGTH:
        message = f"At most {DESCRIPTION_MAX_LENGTH} characters; got {len(description)}."
        raise invalid("description", message, code="max_length")
    return description


def check_window(start_time: datetime | None, expires: datetime | None) -> None:
    if start_time and expires and expires <= start_time:
        raise invalid("expires", "Must be later than start_time.")


def check_expires_in(value: int | None) -> int | None:
    """Each job's deadline in seconds from its firing, checked as a job's ``expires_in`` is."""
    if value is not None:
        job_deadline(expires_in=value)
    return value
