"""How the read-only values of jobs and events are shown: compact local times in list columns,
indented JSON on the page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html


def json_block_html(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html('<pre class="job-pre job-pre--json">{}</pre>', text)


def when_html(value: datetime | None) -> str:
    """A compact, sortable local time for list columns (the full value is in the title)."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<time class="job-when" datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        date_format(local, "DATETIME_FORMAT"),
        local.strftime("%Y-%m-%d %H:%M:%S"),
    )


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
