"""The schedule page in headless Chromium: the crontab's fields inline, the preview following the
fields as they change (from the preview view), the interval/crontab switch, the recent runs.

Leaves screenshots for a human to look at: the schedule page and the schedule list at 1366 and
1920 px wide under var/test/screenshots/ (schedule-page-<width>.png, schedule-list-<width>.png).
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import Job
from jobs.schedules.firing import job_schedule_fire
from jobs.schedules.services import job_schedule_create
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.testing.browser import in_thread, log_in, open_page

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "test" / "screenshots"
PREVIEW_STARTS = """(text) => document.getElementById("schedule-preview").textContent.startsWith(text)"""


def set_up() -> int:
    operator = UserFactory(username="sched-admin", is_staff=True, is_superuser=True)
    schedule = job_schedule_create(
        owner=operator,
        name="Nightly report",
        task=LONG_RUNNING_TASK,
        kwargs={"seconds": 30},
        crontab={"minute": "*/15", "day_of_week": "mon-fri", "timezone": "Europe/Paris"},
        description="Reports for the morning meeting.",
    )
    now = timezone.now()
    for n, (status, seconds) in enumerate((("succeeded", 31.2), ("failed", 4.0), ("succeeded", 30.4))):
        job = job_schedule_fire(periodic_task_id=schedule.pk, last_run_at=datetime(2026, 12, 1 + n, 8, tzinfo=UTC)).job
        started = now - timedelta(hours=3 - n)
        Job.objects.filter(pk=job.pk).update(
            status=status, started_at=started, finished_at=started + timedelta(seconds=seconds), progress=100
        )
    job_schedule_fire(periodic_task_id=schedule.pk, last_run_at=datetime(2026, 12, 4, 8, tzinfo=UTC))  # pending
    return schedule.pk


@pytest.mark.parametrize("width", [1366, 1920])
def test_the_schedule_page_previews_the_timing_as_it_is_typed(asgi_live_server, browser, width):
    schedule_id = in_thread(set_up)
    page, errors = open_page(browser, viewport={"width": width, "height": 900})
    url = f"/admin/django_celery_beat/periodictask/{schedule_id}/change/"
    log_in(page, asgi_live_server, "sched-admin", next_url=url)

    assert page.inner_text("#schedule-preview").startswith("every 15 minutes on weekdays, Europe/Paris; next: ")
    assert page.is_visible("#id_minute") and page.is_visible("#id_day_of_week") and not page.is_visible("#id_every")
    assert page.locator(".schedule-runs tbody tr").count() == 4
    assert page.locator(".schedule-runs .job-badge--failed").count() == 1
    assert "4.0s" in page.inner_text(".schedule-runs") and "31s" in page.inner_text(".schedule-runs")
    assert page.is_visible('.job-task-info[data-task="jobs.tasks.common_tasks.long_running_task"] .job-params')
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"schedule-page-{width}.png"), full_page=True)

    page.fill("#id_minute", "0")
    page.fill("#id_hour", "9")
    page.wait_for_function(PREVIEW_STARTS, arg="at 09:00 on weekdays, Europe/Paris; next: ")
    page.fill("#id_hour", "25")
    page.wait_for_function(PREVIEW_STARTS, arg="hour: ")
    assert "schedule-preview--error" in page.get_attribute("#schedule-preview", "class")
    refused = [error for error in errors.errors if error.startswith("400 GET") and "hour=25" in error]
    assert refused and "/periodictask/preview/" in refused[0]  # the preview view's answer to a bad hour
    errors.errors = [error for error in errors.errors if error not in refused]
    page.check("input[name=timing][value=interval]")
    assert page.is_visible("#id_every") and not page.is_visible("#id_minute")
    page.fill("#id_every", "2")
    page.select_option("#id_period", "hours")
    page.wait_for_function(PREVIEW_STARTS, arg="every 2 hours; next: ")
    assert "schedule-preview--error" not in page.get_attribute("#schedule-preview", "class")

    page.goto(f"{asgi_live_server.url}/admin/django_celery_beat/periodictask/")
    row = page.inner_text("#result_list tbody tr")
    assert "Nightly report" in row and "every 15 minutes on weekdays, Europe/Paris" in row and "PENDING" in row.upper()
    page.screenshot(path=str(SCREENSHOTS / f"schedule-list-{width}.png"), full_page=True)
    errors.check()
    page.close()
