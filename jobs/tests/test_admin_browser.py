"""The job admin in headless Chromium against a live server: log in, styled pages, badges and
bars that move without a reload, and the Cancel action. Leaves screenshots in
/tmp/admin-jobs.png (the list) and /tmp/admin-job-page.png (a job) for a human to look at."""

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobEventKind, JobStatus

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
OPERATOR = "browser-operator"
PASSWORD = "correct-horse-battery-staple-42"  # UserFactory's
SCREENSHOT = "/tmp/admin-jobs.png"
JOB_PAGE_SCREENSHOT = "/tmp/admin-job-page.png"
TASK = "jobs.tasks.common_tasks.long_running_task"

BAR_SHOWS = """([id, percent]) => {
    const bar = document.querySelector(`.job-progress[data-job-id="${id}"]`);
    return bar !== null
        && bar.querySelector(".job-progress__percent").textContent === `${percent}%`
        && bar.querySelector(".job-progress__fill").style.width === `${percent}%`;
}"""
BADGE_SHOWS = """([id, label]) => {
    const badge = document.querySelector(`.job-badge[data-job-id="${id}"]`);
    return badge !== null && badge.textContent === label;
}"""


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (the CI script .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def in_thread(function, *args, **kwargs):
    """Run database work off the test thread.

    Playwright's sync API keeps an event loop running in this thread, and Django refuses
    database calls from a thread with a running loop. The data is committed
    (transactional_db), so the live server sees it.
    """

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def make_job(owner, name: str, status: str, **fields) -> Job:
    now = timezone.now()
    if status != JobStatus.PENDING:
        fields = {
            "started_at": now,
            "heartbeat_at": now,
            "worker": "celery@demo",
            **fields,
        }
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REVOKED):
        fields = {"finished_at": now, **fields}
    job = Job.objects.create(
        owner=owner,
        name=name,
        celery_task_name=TASK,
        queue="default",
        status=status,
        **fields,
    )
    JobEvent.objects.create(job=job, kind=JobEventKind.CREATED, to_status=JobStatus.PENDING, actor=owner)
    return job


def test_job_admin_in_a_browser(live_server, transactional_db, browser):
    def create_jobs():
        UserFactory(username=OPERATOR, is_staff=True, is_superuser=True)
        owner = UserFactory(username="alice-browser")
        done = make_job(
            owner,
            "nightly export",
            JobStatus.SUCCEEDED,
            progress=100,
            result={"rows": 1200},
        )
        failed = make_job(
            owner,
            "import customers",
            JobStatus.FAILED,
            progress=35,
            args=["customers.csv"],
            kwargs={"delimiter": ";", "dry_run": False},
            error="ValueError: bad row 7",
            traceback="Traceback (most recent call last):\n"
            '  File "jobs/tasks/common_tasks.py", line 80, in process_data\n'
            "ValueError: bad row 7",
        )
        JobEvent.objects.create(
            job=failed,
            kind=JobEventKind.STARTED,
            from_status=JobStatus.PENDING,
            to_status=JobStatus.RUNNING,
            actor_label="worker celery@demo",
        )
        JobEvent.objects.create(
            job=failed,
            kind=JobEventKind.FAILED,
            from_status=JobStatus.RUNNING,
            to_status=JobStatus.FAILED,
            actor_label="worker celery@demo",
            message="ValueError: bad row 7",
        )
        revoked = make_job(owner, "old cleanup", JobStatus.REVOKED, progress=10)
        training = make_job(
            owner,
            "train model",
            JobStatus.RUNNING,
            progress=45,
            progress_meta={"message": "epoch 9/20"},
        )
        watched = make_job(
            owner,
            "long run",
            JobStatus.RUNNING,
            progress=30,
            progress_meta={"message": "30/100s"},
        )
        queued = make_job(owner, "queued report", JobStatus.PENDING)
        return training, watched, queued, failed, [done, revoked]

    training, watched, queued, failed, others = in_thread(create_jobs)

    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.set_default_timeout(15_000)
    stylesheets: dict[str, int] = {}
    polls: list[str] = []
    page.on(
        "response",
        lambda response: (
            stylesheets.__setitem__(response.url, response.status)
            if response.request.resource_type == "stylesheet"
            else None
        ),
    )
    page.on(
        "request",
        lambda request: polls.append(request.url) if "/progress/" in request.url else None,
    )

    # Log in through the admin's own form.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/")
    page.fill("#id_username", OPERATOR)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/jobs/job/")
    assert OPERATOR in page.inner_text("#user-tools").lower()

    # Styled: the admin's and the job admin's stylesheets loaded and apply.
    assert any(url.endswith("/admin/css/base.css") for url in stylesheets), stylesheets
    assert any(url.endswith("/jobs/admin/jobs.css") for url in stylesheets), stylesheets
    assert set(stylesheets.values()) == {200}, stylesheets
    header_bg = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")
    badge = page.locator(f'.job-badge[data-job-id="{training.pk}"]')
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(29, 78, 216)"
    assert badge.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    fill = page.locator(f'.job-progress[data-job-id="{watched.pk}"] .job-progress__fill')
    assert fill.evaluate("e => e.getBoundingClientRect().width") > 0

    # Badges and bars of every job on the page.
    for job in (training, watched, queued, failed, *others):
        assert page.locator(f'.job-badge[data-job-id="{job.pk}"]').count() == 1
        assert page.locator(f'.job-progress[data-job-id="{job.pk}"]').count() == 1
    page.wait_for_function(BAR_SHOWS, arg=[str(watched.pk), 30])

    # Progress written by a worker shows up without a reload.
    page.evaluate("window.notReloaded = true")
    in_thread(lambda: Job.objects.filter(pk=watched.pk).update(progress=70, progress_meta={"message": "70/100s"}))
    page.wait_for_function(BAR_SHOWS, arg=[str(watched.pk), 70])
    message = page.locator(f'.job-progress[data-job-id="{watched.pk}"] .job-progress__message')
    assert message.text_content() == "70/100s"
    # ... and so does the end of the job.
    in_thread(
        lambda: Job.objects.filter(pk=watched.pk).update(
            status=JobStatus.SUCCEEDED, progress=100, finished_at=timezone.now()
        )
    )
    page.wait_for_function(BADGE_SHOWS, arg=[str(watched.pk), "Succeeded"])
    page.wait_for_function(BAR_SHOWS, arg=[str(watched.pk), 100])
    assert page.evaluate("window.notReloaded") is True
    assert polls, "the page never polled for progress"

    # Cancel the pending job with the action.
    page.check(f'input.action-select[value="{queued.pk}"]')
    page.select_option("select[name=action]", "cancel")
    page.locator("button[name=index]").first.click()
    page.wait_for_selector("ul.messagelist")
    assert "1 job cancelled." in page.inner_text("ul.messagelist")
    page.wait_for_function(BADGE_SHOWS, arg=[str(queued.pk), "Revoked"])
    revoked_badge = page.locator(f'.job-badge[data-job-id="{queued.pk}"]')
    assert "job-badge--revoked" in revoked_badge.get_attribute("class")
    assert in_thread(lambda: Job.objects.get(pk=queued.pk).status) == JobStatus.REVOKED

    page.screenshot(path=SCREENSHOT, full_page=True)

    # A job page: input, outcome and timeline, read-only, with Retry offered.
    page.click(f'a[href="/admin/jobs/job/{failed.pk}/change/"]')
    page.wait_for_selector(".job-timeline__table")
    assert page.locator(".job-timeline__table tbody tr").count() == 3
    assert "running → failed" in page.inner_text(".job-timeline__table")
    assert "ValueError: bad row 7" in page.inner_text(".job-pre--traceback")
    assert '"delimiter": ";"' in page.inner_text("body")
    assert page.locator("button.job-operation__button--retry").is_visible()
    assert page.locator("input[name=_save]").count() == 0
    page.screenshot(path=JOB_PAGE_SCREENSHOT, full_page=True)

    # The Cancel button of a running job (Retry would send a message to the broker).
    page.goto(f"{live_server.url}/admin/jobs/job/{training.pk}/change/")
    page.click("button.job-operation__button--cancel")
    page.wait_for_selector("ul.messagelist")
    assert "Cancel requested for job “train model”" in page.inner_text("ul.messagelist")
    assert page.inner_text(f'.job-badge[data-job-id="{training.pk}"]').lower() == "cancelling"
    assert page.locator("button.job-operation__button--cancel").count() == 0

    # A page with nothing active does not poll at all.
    polls.clear()
    page.goto(f"{live_server.url}/admin/jobs/job/?status__exact=revoked")
    page.wait_for_timeout(3_000)
    assert polls == []
    page.close()
