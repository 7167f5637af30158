"""One time format across the admin: every time a page shows is local time with seconds and the zone
named ("2026-12-06 10:41:07 UTC", ``jobs.admin.rendering.when_html``, the ISO value on hover); no
page shows Django's default format ("Dec. 6, 2026, 10:41 a.m.") or a time without its zone. The
pages are scanned as served; the dashboard, drawn by JavaScript, in test_dashboard_browser.py."""

import html
import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs.admin.rendering import when_html
from jobs.models import JobEvent
from jobs.queues.services import queue_pause, rate_limit_set
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start
from taskhub.testing.admin import CHANGELIST, TASK, change_url

# Django's default DATETIME_FORMAT in English ("Dec. 6, 2026, 10:41 a.m.") and its parts.
DJANGO_DEFAULT = re.compile(
    r"\b(Jan|Feb|March|April|May|June|July|Aug|Sept|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}"
    r"|\d (a\.m\.|p\.m\.)|\bmidnight\b|\bnoon\b"
)
# A date with a time: it must have seconds and its zone.
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}[^\s<]*(?: [A-Z][A-Za-z+\-0-9]{1,5})?")
ONE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z][A-Za-z+\-0-9]{1,5}")


def shown_text(page: str) -> str:
    """What a reader sees: no tags (their attributes hold the ISO values), no scripts."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def bad_times(page: str) -> list[str]:
    text = shown_text(page)
    found = [match.group(0) for match in DJANGO_DEFAULT.finditer(text)]
    found += [match.group(0) for match in DATE_TIME.finditer(text) if not ONE_FORMAT.fullmatch(match.group(0))]
    return found


def times_without_hover(page: str) -> list[str]:
    """Times shown in a page's fields, columns and sections but not through when_html (a <time> with
    the ISO value on hover). The page's title, breadcrumbs and header name the object (a timeline
    line's name holds its time): not counted."""
    page = re.sub(r'<time class="job-when" datetime="[^"]+" title="[^"]+">[^<]*</time>', " ", page)
    page = re.sub(r'<title>.*?</title>|<div class="breadcrumbs">.*?</div>|<h2[^>]*>.*?</h2>', " ", page, flags=re.S)
    return ONE_FORMAT.findall(shown_text(page))


def test_when_html_names_the_zone_and_gives_the_iso_value_on_hover(settings):
    value = datetime(2026, 12, 6, 9, 41, 7, 250000, tzinfo=UTC)
    assert when_html(value) == (
        '<time class="job-when" datetime="2026-12-06T09:41:07.250000+00:00" title="2026-12-06T09:41:07.250000+00:00">'
        "2026-12-06 09:41:07 UTC</time>"
    )
    settings.TIME_ZONE = "Europe/Paris"
    timezone.deactivate()
    assert ">2026-12-06 10:41:07 CET</time>" in when_html(value)
    assert 'datetime="2026-12-06T10:41:07.250000+01:00"' in when_html(value)
    assert when_html(None) == "-"


def test_the_scan_finds_djangos_format_and_times_without_their_zone():
    assert bad_times("<td>Dec. 6, 2026, 10:41 a.m.</td>") == ["Dec. 6, 2026", "1 a.m."]
    assert bad_times("<td>2026-12-06 10:41</td><td>2026-12-06 10:41:07</td>") == [
        "2026-12-06 10:41",
        "2026-12-06 10:41:07",
    ]
    assert bad_times('<time title="2026-12-06T10:41:07+00:00">2026-12-06 10:41:07 UTC</time>') == []


@pytest.fixture
def admin_pages(operator, owner):
    """Every admin page that shows times, with jobs, events, queue control and a schedule behind them."""
    queue_pause(queue="low_priority", by=operator, source="admin", reason="maintenance")
    rate_limit_set(scope="queue", name="default", limit=100, period=60, by=operator, source="admin")
    held = job_create(owner=owner, name="held", celery_task_name=TASK, args=[1], priority="low")
    failed = job_create(owner=owner, name="failed", celery_task_name=TASK, args=[1], max_retries=1)
    for _ in range(2):
        started = job_start(job_id=failed.pk, worker="celery@worker-1")
        job_fail(job_id=failed.pk, attempts=started.attempts, error="RuntimeError: boom", worker="celery@worker-1")
        failed.__class__.objects.filter(pk=failed.pk).update(run_at=None)
    every = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
    schedule = PeriodicTask.objects.create(
        name="every quarter", task=TASK, interval=every, last_run_at=timezone.now(), args="[1]"
    )
    event = JobEvent.objects.filter(job=failed).last()
    return [
        CHANGELIST,
        change_url(held),
        change_url(failed),
        "/admin/jobs/jobevent/",
        f"/admin/jobs/jobevent/{event.pk}/change/",
        "/admin/jobs/queuecontrol/",
        "/admin/jobs/queuecontrol/low_priority/change/",
        "/admin/jobs/ratelimit/",
        "/admin/jobs/queuecontrolchange/",
        "/admin/django_celery_beat/periodictask/",
        f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{owner.pk}/change/",
    ]


# The job admin's own pages (the first of admin_pages): every time through when_html, with its hover.
OWN_PAGES = 5


def test_no_admin_page_shows_another_time_format(operator_client, admin_pages):
    found = {}
    for url in admin_pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        if bad := bad_times(response.content.decode()):
            found[url] = bad
    assert found == {}


def test_the_job_admins_pages_show_every_time_through_when_html(operator_client, admin_pages):
    found = {}
    for url in admin_pages[:OWN_PAGES]:
        if bad := times_without_hover(operator_client.get(url).content.decode()):
            found[url] = bad
    assert found == {}
