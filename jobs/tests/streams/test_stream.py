"""Live progress without a worker: the publisher the services call, the stream views in-process
(ASGI, Django's async test client), the list stream's scope and filters, the blocking follower for
commands, and the OpenAPI document. The real server and worker: test_stream_server.py."""

import asyncio
import json
import logging
import threading
from urllib.parse import urlsplit

import pytest
import redis
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Permission
from django.db import connection, connections, transaction
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from conftest import assert_error
from jobs.live import JobState, _listeners, _publisher, channel
from jobs.models import JobStatus
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_succeed, job_update_progress
from jobs.services.operations import job_cancel
from jobs.streams.follow import iter_job_states
from jobs.tests.factories import JobFactory
from taskhub.errors import NotFound
from taskhub.testing import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the streams read on their own threads

MODES = ["redis", "polling"]


@pytest.fixture(params=MODES)
def mode(request, settings):
    """Both ways a change reaches a stream: Redis pub/sub (the suite's broker) and polling the rows."""
    if request.param == "polling":
        settings.JOB_EVENTS_REDIS_URL = ""
    elif not settings.JOB_EVENTS_REDIS_URL:
        pytest.fail("JOB_EVENTS_REDIS_URL is empty: run the suite with `make test` (a Redis broker)")
    return request.param


@pytest.fixture(autouse=True)
def _publishing_not_paused():
    _publisher.paused_until = 0.0
    yield
    _publisher.paused_until = 0.0


def bearer(user) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {AccessToken.for_user(user)}"}}


def get(path: str, client: AsyncClient | None = None, **headers):
    return async_to_sync((client or AsyncClient()).get)(path, **headers)


def parse(chunks: list[bytes]) -> list[dict]:
    """Server-sent events as dicts ({"event", "id", "data"} or {"comment"})."""
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if block.startswith(":"):
            events.append({"comment": block[1:].strip()})
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append({"event": fields.get("event"), "id": fields.get("id"), "data": json.loads(fields["data"])})
    return events


def stream(path: str, *, until, act=None, timeout: float = 10.0, client: AsyncClient | None = None, **headers):
    """Open a stream in-process, run ``act()`` once it sent its first state (or comment), and read
    until ``until(events)`` or the end of the stream."""

    async def run():
        response = await (client or AsyncClient()).get(path, **headers)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/event-stream")
        chunks, acted = [], act is None
        content = aiter(response.streaming_content)
        try:
            async with asyncio.timeout(timeout):
                async for chunk in content:
                    chunks.append(chunk)
                    events = parse(chunks)
                    if not acted and events:
                        acted = True
                        await sync_to_async(act)()
                    if until(events):
                        break
        finally:
            await content.aclose()
        return parse(chunks)

    return async_to_sync(run)()


def states(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e.get("event") == "state"]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/jobs/stream/", "/api/v1/jobs/{id}/stream/", "/api/v1/tasks/{id}/stream"])
def test_no_credentials_or_a_bad_token_is_401(user, path):
    path = path.format(id=JobFactory(owner=user).id)
    response = get(path)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert_error(get(path, headers={"Authorization": "Bearer not-a-token"}), 401, "token_not_valid")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000/stream/",
        "/api/v1/jobs/not-a-uuid/stream/",
        "/api/v1/tasks/12345/stream/",
    ],
)
def test_unknown_or_malformed_job_id_is_404(user, path):
    assert_error(get(path, **bearer(user)), 404, "not_found")


def test_another_users_job_is_404_but_staff_may_follow_it(user, other_user, staff_user):
    job = JobFactory(owner=other_user, succeeded=True)
    assert_error(get(f"/api/v1/jobs/{job.id}/stream/", **bearer(user)), 404, "not_found")
    # Staff need jobs.view_job, as in the admin.
    assert_error(get(f"/api/v1/jobs/{job.id}/stream/", **bearer(staff_user)), 404, "not_found")
    staff_user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    events = stream(f"/api/v1/jobs/{job.id}/stream/", until=lambda events: False, **bearer(staff_user))
    assert [e["event"] for e in events] == ["state", "end"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=bogus", "status"),
        ("status=running&status=nope", "status"),
        ("priority=asap", "priority"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2024-13-45", "created_before"),
        ("args_contains=" + "[" * 499 + "]" * 499, "args_contains"),
        ("arg=" + "[" * 499 + "]" * 499, "arg"),
    ],
)
def test_bad_filter_on_the_list_stream_is_400_naming_it(user, query, field):
    body = assert_error(get(f"/api/v1/jobs/stream/?{query}", **bearer(user)), 400, "invalid", field)
    assert body["message"].startswith(f"{field}:")


def test_only_get_is_allowed(user):
    job = JobFactory(owner=user)
    client = AsyncClient()
    for path in ("/api/v1/jobs/stream/", f"/api/v1/jobs/{job.id}/stream/"):
        response = async_to_sync(client.post)(path, **bearer(user))
        assert_error(response, 405, "method_not_allowed")


# --- one job --------------------------------------------------------------------------------------


def test_a_finished_job_sends_its_state_then_end_and_closes(user):
    job = JobFactory(owner=user, succeeded=True)
    events = stream(f"/api/v1/tasks/{job.id}/stream", until=lambda events: False, **bearer(user))
    assert [e["event"] for e in events] == ["state", "end"]
    state = events[0]["data"]
    assert state["id"] == str(job.id) and state["status"] == "succeeded" and state["result"] == {"ok": True}
    assert state["attempt"] == 1 and state["attempts"] == 0 and events[0]["id"]
    assert set(state) == {
        "id",
        "status",
        "progress",
        "progress_message",
        "progress_meta",
        "result",
        "error",
        "attempts",
        "attempt",
        "started_at",
        "finished_at",
        "cancel_requested_at",
    }
    assert events[1]["data"] == {"id": str(job.id), "status": "succeeded"}


def test_changes_are_streamed_in_order_until_the_job_ends(user, mode):
    job = JobFactory(owner=user, running=True)

    def work():
        for percent in (10, 50, 90):
            job_update_progress(job_id=job.id, attempts=0, progress=percent, message=f"at {percent}")
        job_succeed(job_id=job.id, attempts=0, result={"done": True})

    events = stream(f"/api/v1/jobs/{job.id}/stream/", act=work, until=lambda events: False, **bearer(user))
    seen = states(events)
    assert seen[0]["progress"] == 0 and seen[-1]["status"] == "succeeded" and seen[-1]["result"] == {"done": True}
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress)
    if mode == "redis":  # every write arrives; polling shows what each look finds
        assert [s["progress_message"] for s in seen[1:4]] == ["at 10", "at 50", "at 90"]
    assert events[-1] == {"event": "end", "id": None, "data": {"id": str(job.id), "status": "succeeded"}}


def test_a_session_works_too_as_in_the_admin(user, mode):
    job = JobFactory(owner=user, revoked=True)
    client = AsyncClient()
    client.force_login(user)
    events = stream(f"/api/v1/jobs/{job.id}/stream/", client=client, until=lambda events: False)
    assert [e["event"] for e in events] == ["state", "end"] and events[0]["data"]["status"] == "revoked"


def test_a_session_stream_ends_once_the_session_is_logged_out(user, settings):
    """Checked again every JOB_STREAM_KEEPALIVE seconds (the default, 15): the session is read again."""
    job = JobFactory(owner=user, running=True)
    client = AsyncClient()
    client.force_login(user)
    events = stream(
        f"/api/v1/jobs/{job.id}/stream/",
        client=client,
        act=client.logout,  # flushes the session from the store, as the admin's log-out does
        until=lambda events: any(e.get("event") == "closed" for e in events),
        timeout=settings.JOB_STREAM_KEEPALIVE + 5,
    )
    assert events[-1]["event"] == "closed" and events[-1]["data"]["code"] == "not_authenticated", events


def test_keep_alive_comments_while_nothing_changes(user, settings, mode):
    assert settings.JOB_STREAM_KEEPALIVE == 15.0  # the default; shortened below to see one quickly
    settings.JOB_STREAM_KEEPALIVE = 0.3
    job = JobFactory(owner=user, running=True)
    events = stream(f"/api/v1/jobs/{job.id}/stream/", until=lambda events: len(events) >= 3, **bearer(user))
    assert events[0]["event"] == "state" and events[1:3] == [{"comment": "keep-alive"}] * 2


# --- the list stream ------------------------------------------------------------------------------


def test_the_list_stream_shows_the_callers_jobs_through_the_lists_filters(user, other_user, staff_user, mode):
    mine = JobFactory(owner=user, running=True, priority="high", queue="high_priority")
    low = JobFactory(owner=user, running=True, priority="low", queue="low_priority")
    theirs = JobFactory(owner=other_user, running=True, priority="high", queue="high_priority")

    def work():
        for job in (theirs, low, mine):
            job_update_progress(job_id=job.id, attempts=0, progress=42)
        job_cancel(job_id=JobFactory(owner=user, priority="high").id)  # pending -> revoked: not "running"
        for job in (theirs, low, mine):
            job_succeed(job_id=job.id, attempts=0)

    def finished(events):
        return {(s["id"], s["status"]) for s in states(events)} >= {(str(mine.id), "succeeded")}

    query = "/api/v1/jobs/stream/?priority=high&status=running&status=succeeded"
    events = stream(query, act=work, until=finished, **bearer(user))
    seen = states(events)
    assert {s["id"] for s in seen} == {str(mine.id)}
    assert seen[0]["progress"] == 0 and seen[-1]["status"] == "succeeded"
    if mode == "redis":  # every write arrives; polling shows what each look finds
        assert [s["progress"] for s in seen] == [0, 42, 100]
    assert seen[0]["name"] == mine.name and seen[0]["priority"] == "high" and seen[0]["owner_id"] == user.id

    # Staff with jobs.view_job see everyone's jobs (without it, their own); the task filter takes
    # an alias, as the list does.
    other = JobFactory(owner=other_user, running=True)
    own = JobFactory(owner=staff_user, running=True)
    own_events = stream(
        "/api/v1/jobs/stream/?status=succeeded",
        act=lambda: [job_succeed(job_id=job.id, attempts=0) for job in (other, own)],
        until=lambda events: any(s["id"] == str(own.id) for s in states(events)),
        **bearer(staff_user),
    )
    assert [s["id"] for s in states(own_events)] == [str(own.id)]
    other = JobFactory(owner=other_user, running=True)
    staff_user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    staff_events = stream(
        "/api/v1/jobs/stream/?task=long_running_task&status=succeeded",
        act=lambda: job_succeed(job_id=other.id, attempts=0),
        until=lambda events: any(s["id"] == str(other.id) for s in states(events)),
        **bearer(staff_user),
    )
    assert [(s["id"], s["status"]) for s in states(staff_events)] == [(str(other.id), "succeeded")]


def test_the_list_stream_shows_a_new_job_at_once_before_it_starts(user, mode):
    """Creating a job is published after commit like every change: a dashboard sees it while it is
    pending (with Redis, the rows are re-read only every JOB_STREAM_KEEPALIVE, 15 s)."""
    created: list[str] = []

    def create():
        created.append(str(job_create(owner=user, celery_task_name="long_running_task", name="single").id))
        bulk = job_create_bulk(owner=user, items=[{"celery_task_name": "long_running_task", "name": "bulk"}] * 2)
        created.extend(str(job.id) for job in bulk)

    def all_seen(events):
        return bool(created) and {s["id"] for s in states(events)} >= set(created)

    events = stream("/api/v1/jobs/stream/?status=pending", act=create, until=all_seen, timeout=5, **bearer(user))
    new = {s["id"]: s for s in states(events) if s["id"] in created}
    assert set(new) == set(created)
    assert {(s["status"], s["started_at"]) for s in new.values()} == {("pending", None)}
    assert sorted(s["name"] for s in new.values()) == ["bulk", "bulk", "single"]


# --- the publisher --------------------------------------------------------------------------------


@pytest.fixture
def subscriber(settings):
    if not settings.JOB_EVENTS_REDIS_URL:
        pytest.fail("JOB_EVENTS_REDIS_URL is empty: run the suite with `make test` (a Redis broker)")
    pubsub = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel())
    pubsub.get_message(timeout=1)  # the subscription's confirmation

    def received(timeout: float = 1.0) -> list[JobState]:
        messages = []
        while (message := pubsub.get_message(timeout=timeout)) is not None:
            messages.append(JobState.from_message(message["data"]))
            timeout = 0.05
        return messages

    yield received
    pubsub.close()


def test_a_progress_write_is_published_with_the_rows_state(user, settings, subscriber):
    job = JobFactory(owner=user, running=True)
    job_update_progress(job_id=job.id, attempts=0, progress=30, message="a third")
    [state] = subscriber()
    assert state.job_id == str(job.id) and state.progress == 30 and state.message == "a third"
    assert channel() == f"taskhub:jobs:db{urlsplit(settings.JOB_EVENTS_REDIS_URL).path.strip('/') or 0}"


def test_a_transition_is_published_after_commit_never_before(user, subscriber):
    job = JobFactory(owner=user)
    with transaction.atomic():
        job_cancel(job_id=job.id, by=user)
        assert subscriber(timeout=0.3) == []  # not committed yet
    [state] = subscriber()
    assert state.status == JobStatus.REVOKED and state.terminal


def test_a_refused_write_publishes_nothing(user, subscriber):
    job = JobFactory(owner=user, succeeded=True)
    job_update_progress(job_id=job.id, progress=10)
    assert subscriber(timeout=0.3) == []


def test_with_no_stream_listening_nothing_is_read_back_or_sent(user, settings):
    """The read-back costs a query per change; nobody subscribed, it is skipped (one NUMSUB)."""
    client = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL)
    # A web process an earlier test stopped may take a moment to leave the channel.
    wait_for(lambda: client.pubsub_numsub(channel()) == [(channel().encode(), 0)], timeout=10, message="no subscriber")
    job = JobFactory(owner=user, running=True)
    with CaptureQueriesContext(connection) as queries:
        _publisher.publish([job.id])
    assert len(queries) == 0
    client.close()


def test_a_listener_count_connection_redis_closed_is_replaced_at_the_next_write(user, settings, subscriber, caplog):
    """The publisher asks PUBSUB NUMSUB on a connection of its own (not redis-py's client): one that
    Redis closed (a restart, an idle timeout) is replaced at once, the change published, no warning."""
    job = JobFactory(owner=user, running=True)
    job_update_progress(job_id=job.id, attempts=0, progress=10)
    assert [state.progress for state in subscriber()] == [10]
    host, port = _listeners._connection._sock.getsockname()[:2]
    client = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL)
    assert client.client_kill_filter(_type=None, addr=f"{host}:{port}") == 1
    client.close()
    with caplog.at_level(logging.WARNING, logger="jobs.live"):
        job_update_progress(job_id=job.id, attempts=0, progress=20)
    assert [state.progress for state in subscriber()] == [20]
    assert not [record for record in caplog.records if "could not publish" in record.getMessage()]


def test_a_redis_outage_never_fails_a_job_write(user, settings, caplog):
    settings.JOB_EVENTS_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    job = JobFactory(owner=user, running=True)
    with caplog.at_level(logging.WARNING, logger="jobs.live"):
        for percent in (10, 20, 30):
            job_update_progress(job_id=job.id, attempts=0, progress=percent)
        job_succeed(job_id=job.id, attempts=0, result=1)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.progress == 100 and job.result == 1
    warnings = [r for r in caplog.records if "could not publish" in r.getMessage()]
    assert len(warnings) == 1, "one warning, then publishing pauses instead of waiting on Redis at every write"


# --- the blocking follower (for commands) -----------------------------------------------------------


def in_thread(function, delay: float = 0.3) -> threading.Thread:
    def run():
        try:
            threading.Event().wait(delay)
            function()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_iter_job_states_follows_a_job_until_it_ends(user, mode):
    job = JobFactory(owner=user, running=True)

    def work():
        for percent in (25, 75):
            job_update_progress(job_id=job.id, attempts=0, progress=percent)
            threading.Event().wait(0.6)  # one poll apart: polling shows each value too
        job_succeed(job_id=job.id, attempts=0, result="ok")

    thread = in_thread(work)
    seen = [(state.status, state.progress) for state in iter_job_states(job.id, timeout=20)]
    thread.join()
    assert seen == [("running", 0), ("running", 25), ("running", 75), ("succeeded", 100)]


def test_iter_job_states_stops_at_the_timeout_and_refuses_an_unknown_job(user, mode):
    job = JobFactory(owner=user, running=True)
    assert [state.status for state in iter_job_states(job.id, timeout=0.5)] == ["running"]
    with pytest.raises(NotFound):
        next(iter_job_states("00000000-0000-0000-0000-000000000000", timeout=1))


# --- the OpenAPI document ---------------------------------------------------------------------------


def test_the_schema_lists_both_stream_paths_as_event_streams(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for prefix in ("jobs", "tasks"):
        for path in (f"/api/v1/{prefix}/stream/", f"/api/v1/{prefix}/{{id}}/stream/"):
            operation = schema["paths"][path]["get"]
            assert "text/event-stream" in operation["responses"]["200"]["content"], path
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    listing = schema["paths"]["/api/v1/jobs/stream/"]["get"]
    assert {"status", "priority", "task", "owner"} <= {p["name"] for p in listing["parameters"]}
    assert "400" in listing["responses"]
    assert "404" in schema["paths"]["/api/v1/jobs/{id}/stream/"]["get"]["responses"]
    assert "progress" in schema["components"]["schemas"]["JobStreamState"]["properties"]
