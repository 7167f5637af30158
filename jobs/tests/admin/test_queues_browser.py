"""Queue control in headless Chromium: an operator pauses a queue from its page with a reason, the
page then says who paused it, when and why, and its figures (pending, held, running, the oldest
pending job's age, the rate limit) follow new jobs without a reload, on the page and on the list.

Leaves screenshots of a paused queue's page at 1366 and 1920 px wide, and of the queue list at 1366 px,
under var/test/screenshots/.
"""

from pathlib import Path

import pytest
from django.conf import settings

from jobs.models import QueueControl
from jobs.queues.services import queue_pause
from jobs.tests.factories import make
from taskhub.testing.admin import ensure_roles, member_of
from taskhub.testing.browser import in_thread, log_in, open_page

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "test" / "screenshots"
QUEUES = "/admin/jobs/queuecontrol/"
FIGURE = """([queue, name, text]) =>
    document.querySelector(`[data-queue="${queue}"][data-queue-figure="${name}"]`)?.textContent.trim() === text"""


def test_an_operator_pauses_a_queue_from_its_page_and_watches_it_fill(asgi_live_server, browser):
    def set_up():
        ensure_roles()
        member_of("operator", username="alice")
        make(), make("running")

    in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "alice", next_url=f"{QUEUES}default/change/")
    page.wait_for_function(FIGURE, arg=["default", "pending", "1"])
    assert page.locator('[data-queue-control="resume"]').is_hidden()
    page.fill('[data-queue-control="pause"] input[name="reason"]', "deploy")
    page.click('[data-queue-control="pause"] button')
    page.wait_for_url(f"{asgi_live_server.url}{QUEUES}default/change/")
    state = page.inner_text('[data-queue="default"][data-queue-part="state"]')
    assert state.startswith("Paused by alice at ") and state.endswith("— reason: deploy"), state
    assert page.locator('[data-queue-control="pause"]').is_hidden()
    assert "paused (reason: deploy)" in page.inner_text('[data-queue-part="audit"]')
    page.wait_for_function(FIGURE, arg=["default", "held", "1"])
    page.evaluate("window.notReloaded = true")

    in_thread(lambda: [make(), make(), make("running")])
    page.wait_for_function(FIGURE, arg=["default", "pending", "3"], timeout=15_000)
    page.wait_for_function(FIGURE, arg=["default", "held", "3"])
    page.wait_for_function(FIGURE, arg=["default", "running", "2"])
    assert page.evaluate("window.notReloaded") is True
    assert page.inner_text('[data-queue="default"][data-queue-figure="oldest"]').strip().endswith("s")
    assert page.inner_text('[data-queue="default"][data-queue-figure="rate_limit"]').strip() == "none"

    # Resumed elsewhere (the API, the command): the page offers Pause again without a reload.
    in_thread(lambda: QueueControl.objects.filter(name="default").update(paused=False, paused_by=None, reason=""))
    page.wait_for_function(FIGURE, arg=["default", "held", "0"], timeout=15_000)
    page.wait_for_selector('[data-queue-control="pause"]:not([hidden])')
    assert page.inner_text('[data-queue="default"][data-queue-part="state"]').strip() == "Running"
    errors.check()
    page.close()


def test_the_queue_list_is_live(asgi_live_server, browser):
    def set_up():
        ensure_roles()
        member_of("operator", username="alice")

    in_thread(set_up)
    page, errors = open_page(browser)
    log_in(page, asgi_live_server, "alice", next_url=QUEUES)
    page.wait_for_function(FIGURE, arg=["low_priority", "pending", "0"])
    page.evaluate("window.notReloaded = true")
    in_thread(
        lambda: [
            make(priority="low"),
            make(priority="low"),
            queue_pause(queue="low_priority", by=None, source="command", reason="deploy"),
        ]
    )
    page.wait_for_function(FIGURE, arg=["low_priority", "pending", "2"], timeout=15_000)
    page.wait_for_function(FIGURE, arg=["low_priority", "held", "2"])
    assert "— reason: deploy" in page.inner_text('[data-queue="low_priority"][data-queue-part="state"]')
    assert page.evaluate("window.notReloaded") is True
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue-list-1366.png"), full_page=True)
    errors.check()
    page.close()


@pytest.mark.parametrize("width", [1366, 1920])
def test_a_paused_queues_page_at_laptop_and_desktop_widths(asgi_live_server, browser, width):
    def set_up():
        ensure_roles()
        alice = member_of("operator", username="alice")
        for _ in range(3):
            make()
        make("running")
        queue_pause(queue="default", by=alice, source="admin", reason="deploy")

    in_thread(set_up)
    page, errors = open_page(browser, viewport={"width": width, "height": 900})
    log_in(page, asgi_live_server, "alice", next_url=f"{QUEUES}default/change/")
    page.wait_for_function(FIGURE, arg=["default", "held", "3"])
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client, f"the page scrolls sideways: {scroll} px in {client} px"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"queue-paused-{width}.png"), full_page=True)
    errors.check()
    page.close()
