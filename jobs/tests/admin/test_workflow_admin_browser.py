"""A workflow's admin page in headless Chromium against the ASGI server: the DAG's steps change colour
as they are released, start and finish, and the status, progress and counts follow, without a reload
(jobs/admin/workflow_live.js polling the page's live view). Once the workflow is finished the page asks
only every 15 s, which still shows a retry made elsewhere. Leaves a screenshot of the finished DAG at
var/test/screenshots/admin-workflow.png."""

from pathlib import Path

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from jobs.admin.workflows import IDLE_POLL_MILLISECONDS
from jobs.models import Job
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.workflows import workflow_create, workflow_retry
from taskhub.testing.browser import in_thread, log_in, open_page

pytestmark = pytest.mark.browser

SCREENSHOT = Path(settings.BASE_DIR) / "var" / "test" / "screenshots" / "admin-workflow.png"
STEPS = [
    {"id": "fetch", "task": "long_running_task", "kwargs": {"seconds": 0}},
    {"id": "a", "task": "long_running_task", "kwargs": {"seconds": 0}, "after": ["fetch"]},
    {"id": "b", "task": "long_running_task", "kwargs": {"seconds": 0}, "after": ["fetch"]},
    {"id": "merge", "task": "gather", "after": ["a", "b"]},
]
STEP_IS = """([step, status]) => {
    const box = document.querySelector(`[data-workflow-dag] g[data-step="${step}"]`);
    return box !== null && box.dataset.status === status;
}"""
FIELD_IS = """([name, text]) => {
    const value = document.querySelector(`.form-row.field-${name} .readonly, .fieldBox.field-${name} .readonly`);
    return value !== null && value.textContent.trim() === text;
}"""


def run(job_id, *, finish: bool = True) -> None:
    started = job_start(job_id=job_id, worker="w:1")
    if finish:
        job_succeed(job_id=job_id, attempts=started.attempts, result={"ok": True})


def succeed(job_id) -> None:
    job_succeed(job_id=job_id, attempts=Job.objects.get(id=job_id).attempts, result={"ok": True})


def test_the_dag_changes_colour_as_steps_finish_without_a_reload(asgi_live_server, browser):
    def set_up():
        UserFactory(username="boss", is_staff=True, is_superuser=True)
        owner = UserFactory(username="alice")
        workflow = workflow_create(owner=owner, name="nightly", steps=STEPS)
        return workflow.id, {job.workflow_step: job.id for job in Job.objects.filter(workflow=workflow)}

    workflow_id, jobs = in_thread(set_up)
    page, errors = open_page(browser)
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/live/" in request.url else None)
    log_in(page, asgi_live_server, "boss", next_url=f"/admin/jobs/workflow/{workflow_id}/change/")
    page.wait_for_function(STEP_IS, arg=["fetch", "pending"])
    page.wait_for_function(STEP_IS, arg=["merge", "waiting"])
    page.wait_for_function(FIELD_IS, arg=["status", "Pending"])
    fill = page.eval_on_selector('[data-workflow-dag] g[data-step="merge"] rect', "rect => rect.getAttribute('fill')")
    page.evaluate("window.notReloaded = true")

    in_thread(run, jobs["fetch"])  # a and b are released
    page.wait_for_function(STEP_IS, arg=["fetch", "succeeded"])
    page.wait_for_function(STEP_IS, arg=["a", "pending"])
    page.wait_for_function(FIELD_IS, arg=["status", "Running"])
    page.wait_for_function(FIELD_IS, arg=["progress_percent", "25% (1/4)"])

    in_thread(run, jobs["a"], finish=False)
    page.wait_for_function(STEP_IS, arg=["a", "running"])
    in_thread(succeed, jobs["a"])
    in_thread(run, jobs["b"])
    page.wait_for_function(STEP_IS, arg=["merge", "pending"])
    in_thread(run, jobs["merge"])
    page.wait_for_function(STEP_IS, arg=["merge", "succeeded"])
    page.wait_for_function(FIELD_IS, arg=["status", "Succeeded"])
    page.wait_for_function(FIELD_IS, arg=["progress_percent", "100% (4/4)"])
    assert page.evaluate("window.notReloaded") is True
    finished = page.eval_on_selector(
        '[data-workflow-dag] g[data-step="merge"] rect', "rect => rect.getAttribute('fill')"
    )
    assert finished != fill  # the colour itself changed, not only the attribute

    # Finished and nothing left to run: the page stops asking.
    page.wait_for_function("document.querySelector('[data-workflow-dag]').dataset.active === 'false'")
    asked = len(polls)
    page.wait_for_timeout(4_500)
    assert len(polls) == asked, polls[asked:]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    errors.check()
    page.close()


def test_a_finished_workflows_page_still_shows_a_retry_made_elsewhere(asgi_live_server, browser):
    """Finished, the page asks only every IDLE_POLL_MILLISECONDS: a retry from the API or another tab
    still reaches it without a reload (it stopped asking altogether before)."""

    def set_up():
        owner = UserFactory(username="boss", is_staff=True, is_superuser=True)
        workflow = workflow_create(owner=owner, name="nightly", steps=STEPS[:1])
        job = Job.objects.get(workflow=workflow)
        started = job_start(job_id=job.id, worker="w:1")
        job_fail(job_id=job.id, attempts=started.attempts, error="boom", auto_retry=False)
        return owner, workflow.id

    owner, workflow_id = in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "boss", next_url=f"/admin/jobs/workflow/{workflow_id}/change/")
    page.wait_for_function(FIELD_IS, arg=["status", "Failed"])
    assert page.eval_on_selector("[data-workflow-dag]", "root => root.dataset.active") == "false"
    page.evaluate("window.notReloaded = true")

    in_thread(lambda: workflow_retry(user=owner, workflow_id=workflow_id))
    page.wait_for_function(FIELD_IS, arg=["status", "Pending"], timeout=IDLE_POLL_MILLISECONDS + 5_000)
    page.wait_for_function(STEP_IS, arg=["fetch", "pending"])
    assert page.evaluate("window.notReloaded") is True
    errors.check()
    page.close()
