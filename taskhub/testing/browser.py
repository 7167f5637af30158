"""Driving the admin in headless Chromium: the browser's command line, the project's ASGI application
on uvicorn in a thread of the test process, logging in, and what went wrong loading a page. The
fixtures (``asgi_live_server``, ``browser``) are in jobs/tests/admin/conftest.py.

pytest-django's ``live_server`` is a WSGI server, and a WSGI server cannot serve the admin's
live-progress streams: Django collects an asynchronous streaming response whole before handing it
over. ``asgi_live_server`` serves ``taskhub.asgi`` as the Procfile's uvicorn does, in a thread of this
process, so that it uses the test database and settings as ``live_server`` does.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import connections

from jobs.streams.hub import close_current_hub, end_streams
from taskhub.handlers import ReusedThreadASGIHandler
from taskhub.testing.processes import free_port, wait_for

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
PASSWORD = "correct-horse-battery-staple-42"  # UserFactory's
# A laptop screen: the job list must fit it without sideways scrolling.
LAPTOP = {"width": 1366, "height": 768}


class AsgiLiveServer:
    """``taskhub.asgi``'s handler on uvicorn in a thread; static files served from the apps' folders,
    as by ``live_server``."""

    def __init__(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            ASGIStaticFilesHandler(ReusedThreadASGIHandler()),
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,  # then open streams are cancelled
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="asgi-live-server", daemon=True)

    def _run(self) -> None:
        """``uvicorn.Server.run``, and everything its connections opened closed before its loop ends."""
        with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await self.server.serve()
        finally:
            # uvicorn's shutdown cancels what outlived its graceful timeout without waiting, and leaves
            # those connections' sockets open: both end here, while the streams' hub is still there for
            # their clean-up. Left to the loop's end, they would be closed by the garbage collector
            # later (ResourceWarning), in whatever test runs then.
            # Those tasks were cancelled once already (their clients left, or uvicorn's timeout): they
            # get a few seconds to finish their clean-up before a second cancel.
            current = asyncio.current_task()
            rest = [task for task in asyncio.all_tasks() if task is not current]
            if rest:
                await asyncio.wait(rest, timeout=5)
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            for connection in list(self.server.server_state.connections):
                connection.transport.close()
            await close_current_hub()
            await asyncio.sleep(0)  # the transports' close callbacks

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AsgiLiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), message=f"uvicorn on port {self.port}")
        assert self.server.started, "uvicorn did not start (see the log above)"
        return self

    def stop(self) -> None:
        """As a SIGTERM stops the Procfile's web process: its streams end at once with their last
        event, then uvicorn's graceful shutdown."""
        end_streams(self.loop)
        self.server.should_exit = True
        self.thread.join(timeout=15)
        # Whatever the server's loop left open is collected now, so a ResourceWarning names the test
        # that left it (pytest reports unraisable warnings in the phase they happen in), not a later one.
        gc.collect()


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


class PageErrors:
    """What went wrong loading a page's resources: answers of 400 or more and failed requests.

    A ``304 Not Modified`` is a cache hit, not an error. A fetch aborted because the page
    navigated away (a progress request in flight), or an event stream closed as the page is
    left, is not an error either.
    """

    ABORTABLE = ("fetch", "eventsource")

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _response(self, response) -> None:
        if response.status >= 400:
            self.errors.append(f"{response.status} {response.request.method} {response.url}")

    def _failed(self, request) -> None:
        failure = request.failure or ""
        if request.resource_type in self.ABORTABLE and "ERR_ABORTED" in failure:
            return
        self.errors.append(f"failed {request.method} {request.url}: {failure}")

    def check(self) -> None:
        assert self.errors == [], self.errors


def open_page(browser, viewport=LAPTOP):
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(15_000)
    return page, PageErrors(page)


def log_in(page, server, username: str, next_url: str = "/admin/jobs/job/") -> None:
    """Through the admin's own login form."""
    page.goto(f"{server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}{next_url}")
    assert username in page.inner_text("#user-tools").lower()
