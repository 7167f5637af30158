"""A schedule's timing as people read it, with its next firings.

``timing_preview`` turns a checked interval or crontab (as ``services`` stores them) into one
line: ``every 15 minutes on weekdays, Europe/Paris; next: 2026-12-07 09:00:00 CET, 09:15:00,
09:30:00``. The schedule page shows it (and updates it from its JSON view as the fields change),
the schedule list shows it with the next run. Crontab firings are enumerated in the schedule's
own zone (as beat's ``TzAwareCrontab`` reads it), day by day, so they are exact across DST changes.
"""

from __future__ import annotations

import dataclasses
import itertools
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

from celery.schedules import crontab as celery_crontab
from django.utils import timezone

PERIOD_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# How far ahead a crontab's next firing is looked for (29 February on a Monday: 28 years).
SEARCH_DAYS = 366 * 28


@dataclasses.dataclass(frozen=True)
class TimingPreview:
    """``text``: the timing and its next firings in words; ``rule``: the timing alone;
    ``next_runs``: the next firings (aware datetimes, at most ``count``)."""

    rule: str
    text: str
    next_runs: tuple[datetime, ...]


def _plural(count: int, unit: str) -> str:
    singular = unit.removesuffix("s")
    return f"every {singular}" if count == 1 else f"every {count} {unit}"


def _list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _step(values: list[int]) -> int | None:
    """The step of values evenly spaced from 0 (``*/15`` -> 15), else None."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1] - values[0]
    return step if all(b - a == step for a, b in itertools.pairwise(values)) else None


def _contiguous(values: list[int]) -> bool:
    return values == list(range(values[0], values[-1] + 1))


def _times_of_day(minutes: list[int], hours: list[int]) -> str:
    """The minute and hour fields in words."""
    every_minute, every_hour = len(minutes) == 60, len(hours) == 24
    step = _step(minutes)
    if every_hour:
        if every_minute:
            return "every minute"
        if step:
            return _plural(step, "minutes")
        return "every hour at " + _list([f":{m:02d}" for m in minutes])
    if (every_minute or step) and _contiguous(hours):
        last = (hours[-1], minutes[-1])
        how = "every minute" if every_minute else _plural(step, "minutes")
        return f"{how} from {hours[0]:02d}:00 to {last[0]:02d}:{last[1]:02d}"
    if len(minutes) * len(hours) <= 6:
        return "at " + _list([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    return f"at minute {', '.join(map(str, minutes))} of hour {', '.join(map(str, hours))}"


def _days(fields: celery_crontab, spec: dict[str, Any]) -> str:
    """The day fields in words ("" for every day). As cron reads them: when both the day of the
    month and the day of the week are restricted, celery requires both."""
    words = []
    weekdays = sorted(fields.day_of_week)
    if len(weekdays) < 7:
        if weekdays == [1, 2, 3, 4, 5]:
            words.append("on weekdays")
        elif weekdays == [0, 6]:
            words.append("on weekends")
        else:
            words.append("on " + _list([DAY_NAMES[day] for day in weekdays]))
    month_days = sorted(fields.day_of_month)
    if len(month_days) < 31:
        words.append("on day " + ", ".join(map(str, month_days)) + " of the month")
    months = sorted(fields.month_of_year)
    if len(months) < 12:
        words.append("in " + _list([MONTH_NAMES[month - 1] for month in months]))
    return " ".join(words)


def _crontab_fields(spec: dict[str, Any]) -> celery_crontab:
    return celery_crontab(
        minute=spec.get("minute", "*"),
        hour=spec.get("hour", "*"),
        day_of_week=spec.get("day_of_week", "*"),
        day_of_month=spec.get("day_of_month", "*"),
        month_of_year=spec.get("month_of_year", "*"),
    )


def _crontab_runs(fields: celery_crontab, zone: zoneinfo.ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` local times matching the fields, strictly after ``after``."""
    runs: list[datetime] = []
    start = after.astimezone(zone).date()
    minutes, hours = sorted(fields.minute), sorted(fields.hour)
    for offset in range(SEARCH_DAYS):
        day: date = start + timedelta(days=offset)
        if (
            day.month not in fields.month_of_year
            or day.day not in fields.day_of_month
            or (day.weekday() + 1) % 7 not in fields.day_of_week
        ):
            continue
        for hour in hours:
            for minute in minutes:
                local = datetime.combine(day, clock(hour, minute), tzinfo=zone)
                if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
                    continue  # a time the clocks skip (DST starts)
                if local > after:
                    runs.append(local)
                    if len(runs) == count:
                        return runs
    return runs


def _when_text(runs: tuple[datetime, ...]) -> str:
    """``2026-12-07 09:00:00 CET, 09:15:00, 2026-12-08 09:00:00``: the date and zone once."""
    words, previous = [], None
    for run in runs:
        if previous is None:
            words.append(run.strftime("%Y-%m-%d %H:%M:%S %Z"))
        elif run.date() == previous.date():
            words.append(run.strftime("%H:%M:%S"))
        else:
            words.append(run.strftime("%Y-%m-%d %H:%M:%S"))
        previous = run
    return ", ".join(words)


def timing_preview(
    *,
    interval: dict[str, Any] | None = None,
    crontab: dict[str, Any] | None = None,
    enabled: bool = True,
    last_run_at: datetime | None = None,
    start_time: datetime | None = None,
    expires: datetime | None = None,
    one_off: bool = False,
    count: int = 3,
    now: datetime | None = None,
) -> TimingPreview:
    """A checked timing (``{"every", "period"}`` or the five crontab fields and ``timezone``) in
    words and its next ``count`` firings after ``now``; an interval counts from ``last_run_at``
    (from now for a schedule that has not run), as beat does."""
    now = now or timezone.now()
    if interval is not None:
        rule = _plural(interval["every"], interval["period"])
        every = timedelta(seconds=interval["every"] * PERIOD_SECONDS[interval["period"]])
        first = max((last_run_at or now) + every, start_time or now)
        runs = [timezone.localtime(max(first, now) + every * n) for n in range(count)]
    elif crontab is not None:
        zone = zoneinfo.ZoneInfo(str(crontab.get("timezone") or timezone.get_default_timezone_name()))
        fields = _crontab_fields(crontab)
        days = _days(fields, crontab)
        times = _times_of_day(sorted(fields.minute), sorted(fields.hour))
        if times.startswith("at ") and not days:
            times = f"every day {times}"
        rule = f"{times}{f' {days}' if days else ''}, {zone.key}"
        runs = _crontab_runs(fields, zone, max(now, start_time or now), count) if count > 0 else []
    else:
        return TimingPreview(rule="no timing", text="no timing", next_runs=())
    if one_off:
        rule, runs = f"once, {rule}", runs[:1]
    if expires is not None:
        runs = [run for run in runs if run < expires]
    if not enabled:
        return TimingPreview(rule=rule, text=f"{rule}; disabled", next_runs=())
    if not runs:
        return TimingPreview(rule=rule, text=f"{rule}; no next run", next_runs=())
    return TimingPreview(rule=rule, text=f"{rule}; next: {_when_text(tuple(runs))}", next_runs=tuple(runs))


def stored_timing(periodic_task: Any) -> dict[str, Any]:
    """The ``interval`` / ``crontab`` arguments of ``timing_preview`` for a stored periodic task."""
    if periodic_task.interval_id:
        return {"interval": {"every": periodic_task.interval.every, "period": periodic_task.interval.period}}
    if periodic_task.crontab_id:
        row = periodic_task.crontab
        fields = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        return {"crontab": {**{name: getattr(row, name) for name in fields}, "timezone": str(row.timezone)}}
    return {}


def schedule_preview(periodic_task: Any, *, count: int = 3, now: datetime | None = None) -> TimingPreview:
    """``timing_preview`` of a stored periodic task (solar and clocked ones: "no timing")."""
    return timing_preview(
        **stored_timing(periodic_task),
        enabled=periodic_task.enabled,
        last_run_at=periodic_task.last_run_at,
        start_time=periodic_task.start_time,
        expires=periodic_task.expires,
        one_off=periodic_task.one_off,
        count=count,
        now=now,
    )
