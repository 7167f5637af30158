"""The jobs dashboard in headless Chromium: linked from the admin index for those who may see jobs,
its figures and chart follow new jobs without a reload (it polls /api/v1/stats/ with the admin
session); a staff member without the view permission gets neither the link nor the page.

Leaves screenshots for a human to look at: /tmp/admin-dashboard.png, and the dashboard at 1366 and
1920 px wide under var/test/screenshots/.
"""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import WorkerHeartbeat
from jobs.tests.factories import make
from taskhub.testing.admin import ensure_roles, member_of
from taskhub.testing.browser import in_thread, log_in, open_page

pytestmark = pytest.mark.browser

SCREENSHOT = "/tmp/admin-dashboard.png"
FIGURE = """([name, text]) => document.querySelector(`[data-figure="${name}"]`).textContent === text"""
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "test" / "screenshots"
CHART_WIDTH = """() => {
    const chart = document.querySelector("[data-chart]");
    return [chart.getBoundingClientRect().width, chart.parentElement.clientWidth];
}"""
CHART_TOTAL = """(total) => document.querySelector("[data-chart]").dataset.total === String(total)"""


def finished(status: str, seconds: float):
    """A job created a second before it started (the stats, as /metrics, count no run for a job that
    started before it was created or due: that was an earlier round)."""
    now = timezone.now()
    started = now - timedelta(seconds=seconds)
    return make(status, created_at=started - timedelta(seconds=1), started_at=started, finished_at=now)


def test_the_dashboard_goes_live_without_a_reload(asgi_live_server, browser):
    def set_up():
        ensure_roles()
        member_of("viewer", username="dash-viewer")
        UserFactory(username="dash-staff", is_staff=True)  # staff, but no permission on jobs
        make()
        make(priority="urgent")
        finished("succeeded", 2)
        WorkerHeartbeat.objects.create(
            hostname="w1@host", pid=42, queues=["default"], started_at=timezone.now(), last_seen=timezone.now()
        )

    in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "dash-viewer", next_url="/admin/")
    page.click("#jobs-monitoring a")
    page.wait_for_url(f"{asgi_live_server.url}/admin/jobs/dashboard/")
    page.wait_for_function(FIGURE, arg=["pending", "2"])
    page.wait_for_function(FIGURE, arg=["workers", "1"])
    page.wait_for_function(CHART_TOTAL, arg=1)
    assert page.inner_text('[data-table="workers"]').startswith("w1@host:42")
    assert "high_priority" in page.inner_text('[data-table="queues"]')
    page.evaluate("window.notReloaded = true")

    in_thread(lambda: [finished("succeeded", 1), finished("failed", 30), finished("failed", 20)])
    page.wait_for_function(FIGURE, arg=["hour-finished", "4"], timeout=15_000)
    page.wait_for_function(FIGURE, arg=["hour-failure-rate", "50.0%"])
    page.wait_for_function(CHART_TOTAL, arg=4)
    assert page.locator("[data-chart] rect.dashboard-bar--failed").count() == 1  # both in this minute
    assert page.evaluate("window.notReloaded") is True
    assert page.inner_text('[data-table="slowest"]').startswith("jobs.tasks.common_tasks.long_running_task")
    page.screenshot(path=SCREENSHOT, full_page=True)
    errors.check()
    page.close()

    page, _ = open_page(browser)
    log_in(page, asgi_live_server, "dash-staff", next_url="/admin/")
    assert page.locator("#jobs-monitoring").count() == 0
    response = page.goto(f"{asgi_live_server.url}/admin/jobs/dashboard/")
    assert response.status == 403
    page.close()


@pytest.mark.parametrize("width", [1366, 1920])
def test_the_chart_fills_its_container_at_any_width(asgi_live_server, browser, width):
    def set_up():
        ensure_roles()
        member_of("viewer", username="dash-viewer")
        finished("succeeded", 2)
        finished("failed", 30)

    in_thread(set_up)
    page, errors = open_page(browser, viewport={"width": width, "height": 900})
    log_in(page, asgi_live_server, "dash-viewer", next_url="/admin/jobs/dashboard/")
    page.wait_for_function(CHART_TOTAL, arg=2)
    chart, container = page.evaluate(CHART_WIDTH)
    assert chart >= 0.9 * container, f"the chart is {chart:.0f} px of its container's {container} px"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{width}.png"), full_page=True)
    errors.check()
    page.close()


LINKS = """(where) => [...document.querySelectorAll(`${where} a`)].map((a) => a.href)"""
ROWS = "#result_list tbody tr"


def test_every_figure_links_to_the_job_list_of_exactly_those_jobs(asgi_live_server, browser):
    def set_up():
        ensure_roles()
        member_of("viewer", username="dash-viewer")
        make("failed", celery_task_name="jobs.tasks.common_tasks.process_data", finished_at=timezone.now())
        make("failed", finished_at=timezone.now())
        make("succeeded", finished_at=timezone.now())
        make("running", worker="w1@host:42")
        make("running", worker="w1@host:42")
        make("running", worker="w2@host:7")
        finished("succeeded", 2)
        WorkerHeartbeat.objects.create(
            hostname="w1@host", pid=42, queues=["default"], started_at=timezone.now(), last_seen=timezone.now()
        )

    in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "dash-viewer", next_url="/admin/jobs/dashboard/")
    page.wait_for_function(FIGURE, arg=["workers", "1"])
    base = f"{asgi_live_server.url}/admin/jobs/job/"
    queue_links = page.evaluate(LINKS, '[data-table="queues"]')
    failed = f"{base}?queue=default&status__exact=failed"
    assert failed in queue_links and f"{base}?queue=default&status__exact=running" in queue_links
    worker = f"{base}?worker=w1%40host%3A42&status__exact=running"
    assert page.evaluate(LINKS, '[data-table="workers"]') == [worker]
    task = f"{base}?celery_task_name=jobs.tasks.common_tasks.long_running_task"
    assert task in page.evaluate(LINKS, '[data-table="slowest"]')
    assert f"{base}?status__exact=pending" in page.evaluate(LINKS, "[data-tiles]")

    for link, rows in ((failed, 2), (worker, 2), (f"{base}?status__exact=running", 3)):
        page.goto(link)
        assert page.locator(ROWS).count() == rows, link
    page.goto(worker)
    assert set(page.locator(f"{ROWS} td.field-status").all_inner_texts()) <= {"Running"}
    errors.check()
    page.close()


ONE_FORMAT = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$"


def test_the_dashboard_shows_times_in_the_admins_one_format(asgi_live_server, browser):
    """As jobs.admin.rendering.when_html: local time (TIME_ZONE) with seconds, the zone named, the
    value on hover; not the browser's "10:41:07 AM"."""
    seen = timezone.now().replace(microsecond=0)

    def set_up():
        ensure_roles()
        member_of("viewer", username="dash-viewer")
        finished("succeeded", 2)
        WorkerHeartbeat.objects.create(hostname="w1@host", pid=42, queues=["default"], started_at=seen, last_seen=seen)

    in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "dash-viewer", next_url="/admin/jobs/dashboard/")
    page.wait_for_function(FIGURE, arg=["workers", "1"])
    last_seen = page.locator('[data-table="workers"] time')
    assert re.match(ONE_FORMAT, last_seen.inner_text()), last_seen.inner_text()
    assert last_seen.inner_text() == timezone.localtime(seen).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert last_seen.get_attribute("title")
    updated = page.inner_text("[data-dashboard-status]")
    assert re.match(r"^Updated \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC;", updated), updated
    titles = page.eval_on_selector_all("[data-chart] title", "titles => titles.map((t) => t.textContent)")
    assert titles and all(re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC: ", title) for title in titles), titles
    errors.check()
    page.close()
