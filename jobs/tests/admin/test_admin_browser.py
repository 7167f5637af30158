"""The job admin in headless Chromium against the ASGI server: log in, styled pages, badges and
bars that move without a reload (following the live-progress streams, polling only when a stream
fails), the Cancel action, a list that fits a 1366 px screen; an operator (the "operator" role, no
superuser) submitting a job that a real worker runs while its page goes live, then cancelling a
running job from the list; a viewer who may look but not act.

Leaves screenshots for a human to look at: /tmp/admin-jobs.png (the list at 1366x768),
/tmp/admin-job-page.png (a failed job), /tmp/admin-job-submit.png (the submit form) and
/tmp/admin-job-live.png (a submitted job once it succeeded, without a reload).
"""

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import job_revoke, job_succeed, job_update_progress
from taskhub.testing.admin import ensure_roles, member_of
from taskhub.testing.browser import PageErrors, in_thread, log_in, open_page
from taskhub.testing.workers import wait_status

pytestmark = pytest.mark.browser

SCREENSHOT = "/tmp/admin-jobs.png"
JOB_PAGE_SCREENSHOT = "/tmp/admin-job-page.png"
LIVE_PAGE_SCREENSHOT = "/tmp/admin-job-live.png"
SUBMIT_SCREENSHOT = "/tmp/admin-job-submit.png"
TASK = "jobs.tasks.common_tasks.long_running_task"
JOBS_CSS = Path(__file__).resolve().parents[2] / "static" / "jobs" / "admin" / "jobs.css"

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
TITLE_SHOWS = """(title) => {
    const header = document.querySelector('[data-job-part="title"]');
    return header !== null && header.textContent === title && document.title.startsWith(title);
}"""

# The job and list streams' paths (the admin opens them without the optional trailing slash).
STREAM_URL = re.compile(r"/api/v1/jobs/(.+/)?stream")


def assert_no_polling(page, polls: list[str]) -> None:
    """Once the stream's first states are in, the page asks the progress view nothing while no job
    changes: no 2-second timer runs (it would have asked within this window)."""
    page.wait_for_timeout(1_000)
    asked = len(polls)
    page.wait_for_timeout(2_500)
    assert len(polls) == asked, polls[asked:]


def test_page_errors_are_answers_of_400_or_more_and_failed_requests():
    """A stylesheet revalidated from the cache (304) is no error: the check that took it for one
    failed fresh clones, whose static files are new enough for Chromium to revalidate them."""

    class Page:
        def __init__(self) -> None:
            self.handlers = {}

        def on(self, event, handler) -> None:
            self.handlers[event] = handler

    def response(status: int, url: str):
        request = SimpleNamespace(method="GET", url=url, resource_type="stylesheet")
        return SimpleNamespace(status=status, url=url, request=request)

    def request(kind: str, url: str, failure: str):
        return SimpleNamespace(method="GET", url=url, resource_type=kind, failure=failure)

    page = Page()
    errors = PageErrors(page)
    page.handlers["response"](response(200, "/static/admin/css/base.css"))
    page.handlers["response"](response(304, "/static/jobs/admin/jobs.css"))
    page.handlers["requestfailed"](request("fetch", "/admin/jobs/job/progress/?ids=1", "net::ERR_ABORTED"))
    page.handlers["requestfailed"](request("eventsource", "/api/v1/jobs/stream", "net::ERR_ABORTED"))  # page left
    errors.check()

    page.handlers["response"](response(404, "/static/missing.css"))
    page.handlers["response"](response(500, "/admin/jobs/job/"))
    page.handlers["requestfailed"](request("script", "/static/jobs/admin/job_live.js", "net::ERR_ABORTED"))
    with pytest.raises(AssertionError):
        errors.check()
    assert len(errors.errors) == 3


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


def test_job_admin_in_a_browser(asgi_live_server, browser):
    def create_jobs():
        UserFactory(username="browser-admin", is_staff=True, is_superuser=True)
        owner = UserFactory(username="alice-browser-with-a-rather-long-username")
        done = make_job(
            owner,
            "nightly export",
            JobStatus.SUCCEEDED,
            progress=100,
            progress_meta={"message": "0/2 records"},
            result={"rows": 1200},
        )
        failed = make_job(
            owner,
            "import customers",
            JobStatus.FAILED,
            progress=35,
            args=["customers.csv"],
            kwargs={"delimiter": ";", "dry_run": False},
            attempts=3,
            max_retries=3,
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
            "train model on the full customer history of every region, with a long name",
            JobStatus.RUNNING,
            progress=45,
            progress_meta={"message": "epoch 9/20 loss 0.012345"},
            worker="celery@worker-host-number-7.internal.example.com",
        )
        watched = make_job(
            owner,
            "long run",
            JobStatus.RUNNING,
            progress=30,
            progress_meta={"message": "30/100s"},
        )
        retrying = make_job(
            owner,
            "flaky import",
            JobStatus.PENDING,
            progress=50,
            progress_meta={"message": "attempt 1"},
            attempts=1,
            max_retries=3,
            run_at=timezone.now() + timedelta(minutes=5),
        )
        queued = make_job(owner, "queued report", JobStatus.PENDING)
        return training, watched, queued, failed, [done, revoked, retrying]

    training, watched, queued, failed, others = in_thread(create_jobs)

    page, errors = open_page(browser)
    polls: list[str] = []
    streams: list[str] = []
    stylesheets: list[str] = []
    revalidated: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/progress/" in request.url else None)
    page.on("request", lambda request: streams.append(request.url) if request.resource_type == "eventsource" else None)
    page.on(
        "request",
        lambda request: stylesheets.append(request.url) if request.resource_type == "stylesheet" else None,
    )
    page.on("response", lambda response: revalidated.append(response.url) if response.status == 304 else None)
    # As in a fresh clone: a static file modified just now is revalidated by Chromium on every
    # later page (heuristic freshness), answered 304 Not Modified, which is no error.
    JOBS_CSS.touch()

    log_in(page, asgi_live_server, "browser-admin")

    # Styled: the admin's and the job admin's stylesheets loaded and apply.
    assert any(url.endswith("/admin/css/base.css") for url in stylesheets), stylesheets
    assert any(url.endswith("/jobs/admin/jobs.css") for url in stylesheets), stylesheets
    header_bg = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")
    badge = page.locator(f'.job-badge[data-job-id="{training.pk}"]')
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(29, 78, 216)"
    assert badge.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    fill = page.locator(f'.job-progress[data-job-id="{watched.pk}"] .job-progress__fill')
    assert fill.evaluate("e => e.getBoundingClientRect().width") > 0

    # The list fits a 1366 px screen: no sideways scrolling of the page or of the table.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    results = page.locator("#changelist .results")
    assert results.evaluate("e => e.scrollWidth <= e.clientWidth"), results.evaluate(
        "e => [e.scrollWidth, e.clientWidth]"
    )
    for column in ("attempt", "when"):
        cell = page.locator(f"td.field-{column}").first
        assert cell.evaluate("e => e.getBoundingClientRect().right <= window.innerWidth")

    # Messages that are true: a finished job is done, a job waiting for its retry says so.
    done, _, retrying = others
    done_message = page.inner_text(f'.job-progress[data-job-id="{done.pk}"] .job-progress__message')
    assert done_message.startswith("done")
    retry_message = page.inner_text(f'.job-progress[data-job-id="{retrying.pk}"] .job-progress__message')
    assert retry_message.startswith("retry backoff: attempt 2 of 4, until ")
    assert page.inner_text(f'[data-job-id="{retrying.pk}"][data-job-part="attempt"]') == "2/4"

    # Badges and bars of every job on the page.
    for job in (training, watched, queued, failed, *others):
        assert page.locator(f'.job-badge[data-job-id="{job.pk}"]').count() == 1
        assert page.locator(f'.job-progress[data-job-id="{job.pk}"]').count() == 1
    page.wait_for_function(BAR_SHOWS, arg=[str(watched.pk), 30])

    # The list follows the list stream (the session authenticates it) and polls no more.
    assert [url.removeprefix(asgi_live_server.url) for url in streams] == ["/api/v1/jobs/stream"]
    assert_no_polling(page, polls)

    # Progress written by a worker shows up without a reload, brought by the stream.
    page.evaluate("window.notReloaded = true")
    in_thread(job_update_progress, job_id=watched.pk, attempts=0, progress=70, message="70/100s")
    page.wait_for_function(BAR_SHOWS, arg=[str(watched.pk), 70])
    message = page.locator(f'.job-progress[data-job-id="{watched.pk}"] .job-progress__message')
    assert message.text_content() == "70/100s"
    # ... and so does the end of the job, with a true message.
    in_thread(job_succeed, job_id=watched.pk, attempts=0, result={"seconds": 100})
    page.wait_for_function(BADGE_SHOWS, arg=[str(watched.pk), "Succeeded"])
    page.wait_for_function(BAR_SHOWS, arg=[str(watched.pk), 100])
    assert message.text_content().startswith("done")
    assert page.evaluate("window.notReloaded") is True
    assert polls and all(f"ids={watched.pk}" in url for url in polls[-2:]), "asked only about the job that changed"
    assert len(streams) == 1

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
    assert page.locator("button.job-operation__button--cancel").is_hidden()
    assert page.locator("input[name=_save]").count() == 0
    # The progress bar is a bar, not a block (Experience g: reported 65 px tall): the track at most
    # 20 px, the bar with its two-line message at most 40 px.
    heights = page.evaluate(
        "() => [...document.querySelectorAll('.job-progress, .job-progress__track')]"
        ".map(e => [e.className, e.getBoundingClientRect().height])"
    )
    assert heights and all(h <= (20 if c == "job-progress__track" else 40) for c, h in heights), heights
    page.screenshot(path=JOB_PAGE_SCREENSHOT, full_page=True)

    # The Cancel button of a running job (Retry would send a message to the broker).
    page.goto(f"{asgi_live_server.url}/admin/jobs/job/{training.pk}/change/")
    page.click("button.job-operation__button--cancel")
    page.wait_for_selector("ul.messagelist")
    assert "Cancel requested for job “train model" in page.inner_text("ul.messagelist")
    assert page.inner_text(f'.job-badge[data-job-id="{training.pk}"]').lower() == "cancelling"
    assert page.locator("button.job-operation__button--cancel").is_hidden()
    # The page follows the job's own stream, and goes live without polling.
    page.wait_for_function("() => window.taskhubJobAdmin !== undefined")
    assert streams[-1] == f"{asgi_live_server.url}/api/v1/jobs/{training.pk}/stream"
    assert_no_polling(page, polls)
    page.evaluate("window.notReloaded = true")
    in_thread(job_revoke, job_id=training.pk, attempts=0, reason="cancelled by browser-admin")
    page.wait_for_function(TITLE_SHOWS, arg=f"{training.name} (revoked)")
    assert page.inner_text(".field-finished_at_when .readonly") not in ("", "-")
    assert "running → revoked" in page.inner_text(".job-timeline__table")
    assert page.evaluate("window.notReloaded") is True

    # A page with nothing active neither polls nor opens a stream.
    polls.clear()
    streams.clear()
    page.goto(f"{asgi_live_server.url}/admin/jobs/job/?status__exact=revoked")
    page.wait_for_timeout(3_000)
    assert polls == [] and streams == []
    assert any(url.endswith("/jobs/admin/jobs.css") for url in revalidated), revalidated
    errors.check()
    page.close()


def test_where_the_streams_fail_the_admin_polls_and_still_goes_live(asgi_live_server, browser):
    def set_up():
        UserFactory(username="browser-admin", is_staff=True, is_superuser=True)
        owner = UserFactory(username="carol-browser")
        return make_job(owner, "listed run", JobStatus.RUNNING), make_job(owner, "paged run", JobStatus.RUNNING)

    listed, paged = in_thread(set_up)
    page, errors = open_page(browser)
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url) if request.resource_type == "eventsource" else None)
    # Every stream answers 500, as behind a proxy that does not pass event streams.
    page.route(STREAM_URL, lambda route: route.fulfill(status=500, body="no event streams here"))
    log_in(page, asgi_live_server, "browser-admin")

    # The list: a few attempts at its stream, a second apart, then polling.
    in_thread(job_update_progress, job_id=listed.pk, attempts=0, progress=60, message="60/100s")
    page.wait_for_function(BAR_SHOWS, arg=[str(listed.pk), 60])
    assert len(streams) == 3 and all(url.endswith("/api/v1/jobs/stream") for url in streams), streams
    for _ in range(2):  # every 2 s
        with page.expect_request(lambda request: "/progress/" in request.url, timeout=3_000):
            pass

    # A job page: the same, then the whole page follows the job to its end.
    streams.clear()
    page.goto(f"{asgi_live_server.url}/admin/jobs/job/{paged.pk}/change/")
    in_thread(job_update_progress, job_id=paged.pk, attempts=0, progress=70, message="70/100s")
    page.wait_for_function(BAR_SHOWS, arg=[str(paged.pk), 70])
    in_thread(job_succeed, job_id=paged.pk, attempts=0, result={"seconds": 100})
    page.wait_for_function(TITLE_SHOWS, arg="paged run (succeeded)")
    assert len(streams) == 3 and all(url.endswith(f"/api/v1/jobs/{paged.pk}/stream") for url in streams), streams
    assert "running → succeeded" in page.inner_text(".job-timeline__table")
    # Nothing active any more: polling stops.
    with pytest.raises(PlaywrightTimeout):
        with page.expect_request(lambda request: "/progress/" in request.url, timeout=3_000):
            pass

    assert errors.errors and all(re.fullmatch(r"500 GET .*/stream", error) for error in errors.errors), errors.errors
    page.close()


@pytest.mark.worker
def test_an_operator_submits_a_job_watches_it_live_and_cancels_another(asgi_live_server, worker, browser):
    def set_up():
        ensure_roles()
        return member_of("operator", username="browser-operator")

    operator = in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "browser-operator", next_url="/admin/jobs/job/add/")

    # Submit: choose a task, read its parameters, enter arguments.
    page.select_option("#id_task", TASK)
    info = page.locator(f'.job-task-info[data-task="{TASK}"]')
    assert info.is_visible() and "seconds" in info.inner_text()
    assert page.locator('.job-task-info[data-task="jobs.tasks.common_tasks.flaky_task"]').is_hidden()
    page.fill("#id_name", "browser run")
    page.fill("#id_kwargs", '{"seconds": 2, "origin": "browser"}')
    page.screenshot(path=SUBMIT_SCREENSHOT, full_page=True)
    page.click("input[type=submit][name=_save]")
    page.wait_for_url("**/admin/jobs/job/*/change/")
    assert "Job “browser run” submitted." in page.inner_text("ul.messagelist")
    job_id = page.locator("[data-job-page]").get_attribute("data-job-page")
    job = in_thread(lambda: Job.objects.get(pk=job_id))
    assert (job.owner_id, job.kwargs) == (operator.pk, {"seconds": 2, "origin": "browser"})

    # The whole page follows the job to its end without a reload.
    page.evaluate("window.notReloaded = true")
    page.wait_for_function(TITLE_SHOWS, arg="browser run (succeeded)", timeout=30_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.text_content(f'.job-badge[data-job-id="{job_id}"]') == "Succeeded"
    assert page.inner_text(".field-result_json .readonly").count('"origin": "browser"') == 1
    assert page.inner_text(".field-finished_at_when .readonly") not in ("", "-")
    assert page.inner_text(".field-started_at_when .readonly") not in ("", "-")
    timeline = page.inner_text(".job-timeline__table")
    assert "pending → running" in timeline and "running → succeeded" in timeline
    assert page.locator("button.job-operation__button--cancel").is_hidden()
    assert page.locator("button.job-operation__button--retry").is_hidden()
    page.wait_for_timeout(500)  # the bar's fill slides to its width
    page.screenshot(path=LIVE_PAGE_SCREENSHOT, full_page=True)

    # Cancel a running job from the list.
    long_job = in_thread(
        lambda: job_create(owner=operator, celery_task_name=TASK, name="long browser run", kwargs={"seconds": 120})
    )
    in_thread(wait_status, long_job.pk, JobStatus.RUNNING)
    page.goto(f"{asgi_live_server.url}/admin/jobs/job/")
    page.check(f'input.action-select[value="{long_job.pk}"]')
    page.select_option("select[name=action]", "cancel")
    page.locator("button[name=index]").first.click()
    page.wait_for_selector("ul.messagelist")
    # The action reports the job as job_cancel read it back after its request: its worker, told at
    # once, may already have stopped it (a verification run saw "1 job cancelled." once in four).
    reported = page.inner_text("ul.messagelist")
    assert "Cancel requested for 1 running job" in reported or "1 job cancelled." in reported, reported
    page.wait_for_function(BADGE_SHOWS, arg=[str(long_job.pk), "Revoked"], timeout=30_000)
    assert in_thread(lambda: Job.objects.get(pk=long_job.pk).status) == JobStatus.REVOKED
    errors.check()
    page.close()


def test_a_viewer_may_look_but_not_act(asgi_live_server, browser):
    def set_up():
        ensure_roles()
        member_of("viewer", username="browser-viewer")
        owner = UserFactory(username="bob-browser")
        return make_job(owner, "queued report", JobStatus.PENDING), make_job(owner, "broken", JobStatus.FAILED)

    pending, failed = in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "browser-viewer")

    assert page.locator(f'.job-badge[data-job-id="{pending.pk}"]').count() == 1
    assert page.locator("select[name=action]").count() == 0
    assert page.locator("input.action-select").count() == 0
    assert page.locator('a[href*="/matching/"]').count() == 0
    assert page.locator('a[href="/admin/jobs/job/add/"]').count() == 0

    for job in (pending, failed):
        page.goto(f"{asgi_live_server.url}/admin/jobs/job/{job.pk}/change/")
        page.wait_for_selector(".job-timeline")
        assert page.locator("[data-job-operation]").count() == 0
        assert page.locator("a.deletelink").count() == 0

    # A forged POST (with a valid CSRF token, so the refusal is the permission's) is refused.
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    response = page.request.post(
        f"{asgi_live_server.url}/admin/jobs/job/{pending.pk}/cancel/",
        headers={"X-CSRFToken": csrf, "Referer": asgi_live_server.url},
        max_redirects=0,
    )
    assert response.status == 403
    assert "CSRF" not in response.text()
    assert in_thread(lambda: Job.objects.get(pk=pending.pk).status) == JobStatus.PENDING
    errors.check()
    page.close()
