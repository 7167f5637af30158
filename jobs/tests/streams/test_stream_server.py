"""Live progress streams on the real ASGI server (uvicorn, as the Procfile starts it) with a real worker:
progress in order until the job ends, a cancel, a reconnect, and 200 open streams beside ordinary API
requests (no database connection and no thread held per stream)."""

import asyncio
import threading
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from jobs.live import read_state
from jobs.models import JobStatus
from taskhub.testing import AsgiServer, EventStream, child_database_url, wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]

STREAMS = 200


@pytest.fixture
def start_server(broker_url, transactional_db):
    started: list[AsgiServer] = []

    def start(**env: str) -> AsgiServer:
        server = AsgiServer(env={"DATABASE_URL": child_database_url(), "CELERY_BROKER_URL": broker_url, **env})
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server) -> AsgiServer:
    return start_server()


@pytest.fixture
def token(transactional_db) -> str:
    return str(AccessToken.for_user(UserFactory()))


def create_job(server: AsgiServer, token: str, seconds: int) -> str:
    status, body = server.request(
        "POST", "/api/v1/jobs/", token=token, body={"celery_task_name": "long_running_task", "args": [seconds]}
    )
    assert status == 201, body
    return body["id"]


def follow(server: AsgiServer, token: str, job_id: str, prefix: str = "jobs") -> list:
    stream = EventStream(server.port, f"/api/v1/{prefix}/{job_id}/stream/", token=token)
    assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
    events = [event for event in stream.events() if event.kind != "comment"]
    stream.close()
    return events


@pytest.mark.parametrize("prefix", ["jobs", "tasks"])
def test_a_job_streams_its_progress_in_order_then_succeeded_then_the_stream_closes(worker, server, token, prefix):
    job_id = create_job(server, token, 5)
    events = follow(server, token, job_id, prefix)  # returns once the server closed the stream

    states, end = [e.data for e in events[:-1]], events[-1]
    assert all(e.kind == "state" and e.id for e in events[:-1]), events
    assert len({e.id for e in events[:-1]}) == len(states)  # one id per state
    assert all(state["id"] == job_id for state in states)
    running = [s for s in states if s["status"] == JobStatus.RUNNING]
    progress = [s["progress"] for s in running]
    assert progress == sorted(progress)
    assert len(set(progress)) >= 5, progress  # 0, 20, 40, 60, 80, 100 (one a second)
    assert running[-1]["progress_message"] == "5/5s" and running[-1]["attempt"] == 1
    assert states[-1]["status"] == JobStatus.SUCCEEDED and states[-1]["result"]["seconds"] == 5
    assert states[-1]["finished_at"] and states[-1]["progress"] == 100
    assert [s["status"] for s in states].index(JobStatus.SUCCEEDED) == len(states) - 1
    assert end.kind == "end" and end.data == {"id": job_id, "status": JobStatus.SUCCEEDED}


def test_a_cancelled_job_ends_its_stream_with_revoked(worker, server, token):
    job_id = create_job(server, token, 5)
    stream = EventStream(server.port, f"/api/v1/jobs/{job_id}/stream/", token=token)
    events = []
    for event in stream.events():
        events.append(event)
        if event.kind == "state" and event.data["progress"] >= 40 and not event.data["cancel_requested_at"]:
            assert server.request("POST", f"/api/v1/jobs/{job_id}/cancel/", token=token)[0] == 200
    stream.close()

    states = [e.data for e in events if e.kind == "state"]
    assert states[-1]["status"] == JobStatus.REVOKED and states[-1]["progress"] < 100
    assert any(s["status"] == JobStatus.RUNNING and s["cancel_requested_at"] for s in states)
    assert events[-1].kind == "end" and events[-1].data["status"] == JobStatus.REVOKED


def test_reconnecting_with_last_event_id_gets_the_latest_state_at_once(worker, server, token):
    job_id = create_job(server, token, 8)
    stream = EventStream(server.port, f"/api/v1/jobs/{job_id}/stream/", token=token)
    last = next(e for e in stream.events() if e.kind == "state" and e.data["progress"] >= 25)
    stream.close()  # the connection drops mid-run
    time.sleep(2.5)  # progress moves on meanwhile

    before, asked = read_state(job_id), time.time()
    again = EventStream(server.port, f"/api/v1/jobs/{job_id}/stream/", token=token, Last_Event_ID=last.id)
    first = again.next()
    after = read_state(job_id)
    again.close()
    assert first.kind == "state" and first.received - asked < 1.0
    assert first.data["progress"] > last.data["progress"] and first.id != last.id
    assert before.progress <= first.data["progress"] <= after.progress  # the latest state at that moment
    wait_status(job_id)


def test_polling_fallback_without_redis_pubsub(worker, start_server, token):
    server = start_server(JOB_EVENTS_REDIS_URL="none")  # the web side polls the rows (the worker still publishes)
    job_id = create_job(server, token, 3)
    events = follow(server, token, job_id)
    progress = [e.data["progress"] for e in events if e.kind == "state" and e.data["status"] == "running"]
    assert len(set(progress)) >= 3 and progress == sorted(progress)
    assert events[-2].data["status"] == JobStatus.SUCCEEDED and events[-1].kind == "end"


def stream_db_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        )
        return cursor.fetchone()[0]


async def open_streams(port: int, opens: list[tuple[str, str]]) -> list:
    """Open a stream per (token, path) at once and read until each has sent its first state."""

    async def one(token: str, path: str):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200"), "a stream was refused"
        while b"event: state" not in await asyncio.wait_for(reader.readline(), 30):
            pass
        return reader, writer

    return await asyncio.gather(*(one(token, path) for token, path in opens))


async def close_streams(streams: list) -> None:
    """Close every stream and wait until its transport is gone (no unclosed socket left behind)."""
    for _, writer in streams:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in streams), return_exceptions=True)


def test_200_open_streams_hold_no_connection_or_thread_and_do_not_slow_the_api(worker, server, token):
    job_id = create_job(server, token, 20)
    wait_status(job_id, JobStatus.RUNNING)
    baseline_threads, baseline_connections = server.threads(), stream_db_connections()
    # A user has at most JOB_STREAM_MAX_PER_USER (10) streams: the owner's 10 on the job, then staff
    # members' list streams up to 200 (with jobs.view_job they see the job too).
    cap = settings.JOB_STREAM_MAX_PER_USER
    opens = [(token, f"/api/v1/jobs/{job_id}/stream/")] * cap
    view_job = Permission.objects.get(codename="view_job", content_type__app_label="jobs")
    for _ in range((STREAMS - cap) // cap):
        staff = UserFactory(is_staff=True)
        staff.user_permissions.add(view_job)
        opens += [(str(AccessToken.for_user(staff)), "/api/v1/jobs/stream/")] * cap
    loop = asyncio.new_event_loop()
    streams = loop.run_until_complete(open_streams(server.port, opens))
    holder = threading.Thread(target=loop.run_forever, daemon=True)  # the streams stay open, read by nobody
    holder.start()
    try:
        timings = []
        for _ in range(10):
            started = time.perf_counter()
            status, _ = server.request("GET", "/api/v1/jobs/", token=token)
            listed = time.perf_counter()
            created, _ = server.request(
                "POST", "/api/v1/jobs/", token=token, body={"celery_task_name": "long_running_task", "args": [0]}
            )
            timings.append((listed - started, time.perf_counter() - listed))
            assert (status, created) == (200, 201)
        connections = stream_db_connections()
        threads = server.threads()
        assert read_state(job_id).status == JobStatus.RUNNING  # measured while the job still runs
    finally:
        asyncio.run_coroutine_threadsafe(close_streams(streams), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        holder.join(10)
        loop.close()
    print(  # shown with pytest -s: the figures of the README
        f"\n{STREAMS} streams: slowest GET {max(t[0] for t in timings) * 1000:.0f} ms, slowest POST "
        f"{max(t[1] for t in timings) * 1000:.0f} ms; connections {baseline_connections} -> {connections}; "
        f"web threads {baseline_threads} -> {threads}"
    )
    assert max(max(pair) for pair in timings) < 1.0, timings
    # The web process has a few connections (its stream-database threads, the API's), the worker a
    # few; none of it grows with the streams (PostgreSQL's max_connections is 100).
    assert connections <= baseline_connections + 8, (baseline_connections, connections)
    assert threads <= baseline_threads + 10, (baseline_threads, threads)
    wait_for(lambda: server.threads() <= threads, timeout=10, message="threads to settle after the streams closed")
