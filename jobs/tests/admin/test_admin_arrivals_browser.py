"""The job list as live as Oban Web, in headless Chromium: jobs created (through the service, as the
API does) after the list was rendered are announced ("2 new jobs — show") and counted in "N jobs"
without a reload, only those the list's filters match; "show" lists them. Held jobs say why they
wait on the list and on their page.

Leaves screenshots for the closing note under var/test/screenshots/ (see SCREENSHOTS below).
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import Job
from jobs.queues.services import queue_pause
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start
from taskhub.testing.admin import TASK
from taskhub.testing.browser import in_thread, log_in, open_page

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "test" / "screenshots"
NOTICE = "[data-job-arrivals]"
NOTICE_SAYS = """(text) => {
    const notice = document.querySelector("[data-job-arrivals]");
    return !notice.hidden && notice.textContent.trim() === text;
}"""
RENDER_FRESH_PARTS = """async (url) => {
    const response = await fetch(url, {credentials: "same-origin"});
    window.taskhubJobAdmin.renderJob((await response.json()).jobs[0]);
}"""
COUNT_SAYS = """(text) => document.querySelector("[data-job-count]").textContent.trim() === text"""


def create(owner, name: str, **request):
    return in_thread(lambda: job_create(owner=owner, name=name, celery_task_name=TASK, args=[1], **request))


def test_new_jobs_are_announced_counted_and_shown(asgi_live_server, browser):
    def set_up():
        UserFactory(username="arrivals-admin", is_staff=True, is_superuser=True)
        return UserFactory(username="alice-arrivals")

    owner = in_thread(set_up)
    create(owner, "export 1")
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "arrivals-admin")
    assert page.locator(NOTICE).is_hidden()
    assert page.inner_text("[data-job-count]") == "1 job"

    create(owner, "export 2")
    page.wait_for_function(NOTICE_SAYS, arg="1 new job — show")
    page.wait_for_function(COUNT_SAYS, arg="2 jobs")
    create(owner, "export 3")
    page.wait_for_function(NOTICE_SAYS, arg="2 new jobs — show")
    page.wait_for_function(COUNT_SAYS, arg="3 jobs")
    assert page.locator("#result_list tbody tr").count() == 1  # nothing moved under the reader's eyes

    page.click(f"{NOTICE} a")
    page.wait_for_function("() => document.querySelectorAll('#result_list tbody tr').length === 3")
    assert {"export 2", "export 3"} <= set(page.locator("#result_list tbody th a").all_inner_texts())
    assert page.locator(NOTICE).is_hidden()

    # A filtered list counts only what it lists.
    page.goto(f"{asgi_live_server.url}/admin/jobs/job/?q=import")
    assert page.inner_text("[data-job-count]") == "0 jobs"
    create(owner, "export 4")
    page.wait_for_timeout(4_000)  # more than one poll
    assert page.locator(NOTICE).is_hidden() and page.inner_text("[data-job-count]") == "0 jobs"
    create(owner, "import 5")
    page.wait_for_function(NOTICE_SAYS, arg="1 new job — show")
    page.wait_for_function(COUNT_SAYS, arg="1 job")
    errors.check()
    page.close()


@pytest.mark.parametrize("width", [1366, 1920])
def test_screenshots_of_a_job_arriving_and_of_held_jobs(asgi_live_server, browser, width):
    """For the closing note: list-arriving-<width>.png (the list with "1 new job — show"),
    held-list-<width>.png (jobs held by a paused queue and by a retry's backoff, each saying why) and
    held-job-<width>.png (the held job's page: "waiting because" the paused queue) and attempts-job-<width>.png
    (a job waiting for its retry: the backoff, its failed attempt with the traceback opened)."""

    def set_up():
        operator = UserFactory(username="shots-admin", is_staff=True, is_superuser=True)
        owner = UserFactory(username="alice-shots")
        for name in ("nightly export", "resize images"):
            job_create(owner=owner, name=name, celery_task_name=TASK, args=[1])
        retrying = job_create(owner=owner, name="sync invoices", celery_task_name=TASK, args=[1], max_retries=3)
        started = job_start(job_id=retrying.pk, worker="celery@worker-1")
        job_fail(
            job_id=retrying.pk,
            attempts=started.attempts,
            error="ConnectionError: upstream timed out",
            traceback="Traceback (most recent call last):\nConnectionError: upstream timed out\n",
            worker="celery@worker-1",
        )
        # The task's first backoff is a few seconds: as a longer one would, it still waits on the screenshots.
        Job.objects.filter(pk=retrying.pk).update(run_at=timezone.now() + timedelta(minutes=5))
        queue_pause(queue="low_priority", by=operator, source="admin", reason="database maintenance")
        held = job_create(owner=owner, name="weekly report", celery_task_name=TASK, args=[1], priority="low")
        return owner, held, retrying

    owner, held, retrying = in_thread(set_up)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page, errors = open_page(browser, viewport={"width": width, "height": 900})
    log_in(page, asgi_live_server, "shots-admin")
    held_row = page.locator(f'.job-progress[data-job-id="{held.pk}"] .job-progress__message')
    assert held_row.inner_text() == "held: queue low_priority is paused (database maintenance)"
    assert "retry backoff: attempt 2 of 4, until " in page.inner_text("#result_list")
    page.screenshot(path=str(SCREENSHOTS / f"held-list-{width}.png"), full_page=True)

    create(owner, "import customers")
    page.wait_for_function(NOTICE_SAYS, arg="1 new job — show")
    page.screenshot(path=str(SCREENSHOTS / f"list-arriving-{width}.png"), full_page=True)

    page.goto(f"{asgi_live_server.url}/admin/jobs/job/{held.pk}/change/")
    assert "held: queue low_priority is paused (database maintenance)" in page.inner_text(".field-progress_bar")
    page.screenshot(path=str(SCREENSHOTS / f"held-job-{width}.png"), full_page=True)

    page.goto(f"{asgi_live_server.url}/admin/jobs/job/{retrying.pk}/change/")
    assert "retry backoff: attempt 2 of 4, until " in page.inner_text(".field-held_reason")
    attempt = page.locator(".job-attempt-row").first
    assert "ConnectionError: upstream timed out" in attempt.inner_text()
    attempt.locator("summary").click()  # the traceback, one click away
    assert attempt.locator("details pre").is_visible()
    # The page's live refresh (the job's parts from the progress view) keeps the opened traceback open.
    page.evaluate(RENDER_FRESH_PARTS, f"/admin/jobs/job/progress/?ids={retrying.pk}&detail=1")
    assert attempt.locator("details pre").is_visible()
    page.screenshot(path=str(SCREENSHOTS / f"attempts-job-{width}.png"), full_page=True)
    errors.check()
    page.close()
