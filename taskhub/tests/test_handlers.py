"""The ASGI handler reuses a request's thread for later requests (taskhub/handlers.py), and a web or
worker process freezes what it has loaded (taskhub/runtime.py)."""

import asyncio
import gc
import subprocess
import sys
import threading

import pytest
from celery import signals
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started

from taskhub import handlers
from taskhub.handlers import ReusedThreadASGIHandler


def _scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def _get(app, path: str = "/no-such-page/") -> int:
    """One request through the ASGI application; its status."""
    done = asyncio.Event()
    messages: list[dict] = []
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(_scope(path), receive, send)
    return messages[0]["status"]


@pytest.fixture
def threads_of_requests():
    """The name of the thread each request's synchronous code started on (Django sends
    ``request_started`` to a synchronous receiver on that thread)."""
    names: list[str] = []

    def record(**kwargs):
        names.append(threading.current_thread().name)

    request_started.connect(record, weak=False)
    yield names
    request_started.disconnect(record)


def test_one_request_after_another_runs_on_the_same_thread(threads_of_requests):
    app = ReusedThreadASGIHandler()

    async def three():
        return [await _get(app) for _ in range(3)]

    assert asyncio.run(three()) == [404, 404, 404]
    assert len(set(threads_of_requests)) == 1, threads_of_requests
    assert threads_of_requests[0] != threading.current_thread().name


def test_django_handler_starts_a_thread_per_request(threads_of_requests):
    """What the handler changes: Django's own gives every request a new thread."""

    async def three():
        app = ASGIHandler()
        return [await _get(app) for _ in range(3)]

    assert asyncio.run(three()) == [404, 404, 404]
    assert len(set(threads_of_requests)) == 3, threads_of_requests


def test_requests_at_the_same_time_run_on_threads_of_their_own(threads_of_requests, monkeypatch):
    """Two requests whose synchronous code must be running at the same moment (a barrier both wait
    at): on one shared thread the barrier would break. Only MAX_IDLE_THREADS are kept afterwards."""
    barrier = threading.Barrier(2, timeout=10)

    def meet(**kwargs):
        barrier.wait()

    monkeypatch.setattr(handlers, "MAX_IDLE_THREADS", 1)
    app = ReusedThreadASGIHandler()
    request_started.connect(meet, weak=False)
    try:

        async def two_at_once():
            return await asyncio.gather(_get(app), _get(app))

        assert asyncio.run(two_at_once()) == [404, 404]
    finally:
        request_started.disconnect(meet)
    assert len(set(threads_of_requests)) == 2, threads_of_requests
    assert len(app._idle) == 1

    asyncio.run(_get(app))
    assert threads_of_requests[-1] in threads_of_requests[:2]


def test_non_http_scope_is_refused():
    app = ReusedThreadASGIHandler()
    with pytest.raises(ValueError, match="websocket"):
        asyncio.run(app({"type": "websocket"}, None, None))


def test_web_process_loads_its_code_and_freezes_it():
    """What `uvicorn taskhub.asgi:application` imports: the URLconf's views are loaded and every
    object alive then is out of the garbage collector's reach."""
    probe = (
        "import gc, sys, taskhub.asgi as asgi;"
        "print(type(asgi.application).__name__, gc.get_freeze_count(), 'jobs.views' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "ReusedThreadASGIHandler"
    assert int(out[1]) > 50_000, out
    assert out[2] == "True"


def test_worker_processes_freeze_what_they_loaded():
    from taskhub.celery import _freeze_loaded_objects

    assert _freeze_loaded_objects in signals.worker_process_init._live_receivers(sender=None)
    assert _freeze_loaded_objects in signals.worker_ready._live_receivers(sender=None)
    try:
        _freeze_loaded_objects()
        assert gc.get_freeze_count() > 50_000
    finally:
        gc.unfreeze()


@pytest.mark.django_db(transaction=True)
def test_a_synchronous_view_crosses_between_loop_and_thread_only_at_the_edges(monkeypatch):
    """A request to a synchronous view (the API's) goes to its thread three times: request_started,
    the whole middleware chain with the view and its rendering, and the response's close (Django's
    request_finished). Built for ASGI, Django's chain came back to the event loop below the last
    synchronous middleware to resolve the URL, then crossed again to run the view and again to
    render it: three more round trips, each a thread wake-up on a busy machine."""
    from asgiref import sync

    crossings = {"to thread": 0, "to loop": 0}
    to_thread, to_loop = sync.SyncToAsync.__call__, sync.AsyncToSync.__call__

    async def counted_to_thread(self, *args, **kwargs):
        crossings["to thread"] += 1
        return await to_thread(self, *args, **kwargs)

    def counted_to_loop(self, *args, **kwargs):
        crossings["to loop"] += 1
        return to_loop(self, *args, **kwargs)

    app = ReusedThreadASGIHandler()
    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted_to_thread)
    monkeypatch.setattr(sync.AsyncToSync, "__call__", counted_to_loop)
    assert asyncio.run(_get(app, "/healthz")) == 200
    assert crossings == {"to thread": 3, "to loop": 0}
    crossings.update({"to thread": 0, "to loop": 0})
    assert asyncio.run(_get(app, "/api/v1/jobs/")) == 401  # DRF's view, its answer rendered
    assert crossings == {"to thread": 4, "to loop": 0}  # and Django logs an answer >= 400 (log_response)
