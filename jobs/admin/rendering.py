"""How the read-only values of jobs and events are shown: times (``when_html``, the admin's one
time format), durations and worker names in list columns, indented JSON on the page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.html import format_html


def json_block_html(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html('<pre class="job-pre job-pre--json">{}</pre>', text)


def when_text(value: datetime) -> str:
    """``2026-12-06 10:41:07 CET``: local time (TIME_ZONE) with seconds, the zone named."""
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def when_html(value: datetime | None) -> str:
    """The admin's one time format, for every time a page shows (lists, job pages, timelines,
    attempts, queues, schedules; templates through ``{{ value|when }}``, jobs/templatetags): the
    local time with seconds and its zone (``when_text``), the ISO value on hover; "-" for none.
    Django's own rendering of a time, where a stock page still uses it, says the same
    (taskhub/formats)."""
    if value is None:
        return "-"
    iso = timezone.localtime(value).isoformat()
    return format_html('<time class="job-when" datetime="{}" title="{}">{}</time>', iso, iso, when_text(value))


def when_column(field: str, description: Any) -> Callable[[Any, Any], str]:
    """A ModelAdmin column showing the time in ``field`` with when_html(), sorted by ``field``."""

    @admin.display(description=description, ordering=field)
    def column(model_admin, obj) -> str:
        return when_html(getattr(obj, field))

    return column


def json_column(field: str, description: Any) -> Callable[[Any, Any], str]:
    """A ModelAdmin read-only field showing the JSON value of ``field`` with json_block_html()."""

    @admin.display(description=description)
    def column(model_admin, obj) -> str:
        return json_block_html(getattr(obj, field))

    return column


def clock_text(value: datetime, *, now: datetime | None = None) -> str:
    """A local time as people read it in a message: ``14:05:09`` today, with the date otherwise."""
    local = timezone.localtime(value)
    today = timezone.localtime(now or timezone.now()).date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M:%S")


def duration_text(delta: timedelta) -> str:
    """``3.2s``, ``42s``, ``12m 5s``, ``3h 12m``, ``2d 3h``."""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def short_worker_text(worker: str) -> str:
    """A worker's name as short as a list column needs: the host's first label of
    ``celery@worker-7.example.com`` (Celery's default node name tells nothing)."""
    node, _, host = worker.rpartition("@")
    name = host.split(".")[0] if node else worker
    return name if len(name) <= 14 else f"{name[:13]}…"
