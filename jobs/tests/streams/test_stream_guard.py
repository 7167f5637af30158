"""The bounds of the live streams on the real web process (uvicorn as the Procfile starts it, Redis as
the suite's broker): at most JOB_STREAM_MAX_PER_USER open streams per user across web processes, one
Redis connection per process for all of them, a stream that ends when its user or token stops being
valid, and a web process that stops within a bound on SIGTERM whatever its streams are doing."""

import asyncio
import json
import signal
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from taskhub.testing import AsgiServer, EventStream, child_database_url, wait_for
from taskhub.testing.web import procfile_web_options

pytestmark = [pytest.mark.timeout(240)]

CAP = 10  # JOB_STREAM_MAX_PER_USER's default
GRACEFUL = 10  # seconds: the Procfile's --timeout-graceful-shutdown
LIST = "/api/v1/jobs/stream/"


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


@pytest.fixture(autouse=True)
def _no_slots_left_over(broker_url):
    """Each test starts with nobody's streams counted (the sorted sets of the suite's Redis db)."""
    client = redis.Redis.from_url(broker_url)
    for key in client.scan_iter(f"{settings.JOB_EVENTS_CHANNEL}:streams:*"):
        client.delete(key)
    yield
    client.close()


def token_for(user, **lifetime) -> str:
    token = AccessToken.for_user(user)
    if lifetime:
        token.set_exp(lifetime=timedelta(**lifetime))
    return str(token)


def redis_clients(broker_url: str) -> int:
    """Connections to the suite's Redis db (other engineers' suites use other dbs)."""
    client = redis.Redis.from_url(broker_url)
    try:
        db = int(urlsplit(broker_url).path.strip("/") or 0)
        return sum(1 for c in client.client_list() if int(c["db"]) == db and c["cmd"] != "client|list")
    finally:
        client.close()


async def attempt(port: int, token: str, path: str = LIST):
    """Open a stream; (status, headers, body or None, reader, writer). An accepted stream is read until
    its first event (the list's snapshot ends with a comment) and left open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), 30)).split()[1])
    headers = {}
    while (line := await asyncio.wait_for(reader.readline(), 30)) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if status != 200:
        body = json.loads(await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30))
        writer.close()
        return status, headers, body, None, None
    while not (await asyncio.wait_for(reader.readline(), 30)).startswith((b":", b"event:")):
        pass
    return status, headers, None, reader, writer


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


async def close_all(writers) -> None:
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


# --- found item 6: a cap per user, one Redis connection per process ----------------------------
def test_200_stream_attempts_by_one_user_open_10_the_rest_429_and_redis_connections_stay_flat(
    start_server, broker_url, loop
):
    server = start_server()
    users = [UserFactory() for _ in range(20)]
    tokens = [token_for(user) for user in users]
    before = redis_clients(broker_url)
    first = loop.run_until_complete(attempt(server.port, tokens[0]))
    assert first[0] == 200
    one = redis_clients(broker_url)

    results = loop.run_until_complete(asyncio.gather(*(attempt(server.port, tokens[0]) for _ in range(199))))
    statuses = [r[0] for r in results]
    assert statuses.count(200) == CAP - 1 and statuses.count(429) == 190, sorted(set(statuses))
    refused = next(r for r in results if r[0] == 429)
    assert refused[2]["code"] == "too_many_streams" and f"at most {CAP}" in refused[2]["message"], refused[2]
    assert int(refused[1]["retry-after"]) > 0 and refused[1]["content-type"] == "application/json"

    others = loop.run_until_complete(
        asyncio.gather(*(attempt(server.port, token) for token in tokens[1:] for _ in range(CAP)))
    )
    assert [r[0] for r in others] == [200] * (CAP * 19)
    streams = [first, *(r for r in results if r[0] == 200), *others]
    assert len(streams) == 200
    many = redis_clients(broker_url)
    print(f"\nRedis clients on the db: no stream {before}, 1 stream {one}, 200 streams {many}")
    loop.run_until_complete(close_all([s[4] for s in streams]))
    assert many - one <= 3, (before, one, many)


def test_the_cap_counts_streams_across_web_processes_and_a_closed_stream_frees_its_slot(start_server, loop):
    first, second = start_server(), start_server()
    token = token_for(UserFactory())
    on_first = loop.run_until_complete(asyncio.gather(*(attempt(first.port, token) for _ in range(6))))
    on_second = loop.run_until_complete(asyncio.gather(*(attempt(second.port, token) for _ in range(6))))
    assert [r[0] for r in on_first] == [200] * 6
    assert sorted(r[0] for r in on_second) == [200] * 4 + [429] * 2
    loop.run_until_complete(close_all([on_first[0][4]]))
    again = []

    def reopened() -> bool:
        again.append(loop.run_until_complete(attempt(second.port, token)))
        return again[-1][0] == 200

    wait_for(reopened, timeout=10, message="the closed stream's slot to be free")
    loop.run_until_complete(close_all([r[4] for r in (*on_first[1:], *on_second, *again) if r[4]]))


def test_without_redis_the_cap_holds_per_web_process(start_server, loop):
    server = start_server(JOB_EVENTS_REDIS_URL="none")
    token = token_for(UserFactory())
    results = loop.run_until_complete(asyncio.gather(*(attempt(server.port, token) for _ in range(CAP + 5))))
    try:
        assert sorted(r[0] for r in results) == [200] * CAP + [429] * 5
    finally:
        loop.run_until_complete(close_all([r[4] for r in results if r[4]]))


def test_the_slots_of_a_crashed_web_process_expire_within_three_keep_alives(start_server, loop):
    crashed, alive = start_server(), start_server()
    token = token_for(UserFactory())
    lost = loop.run_until_complete(asyncio.gather(*(attempt(crashed.port, token) for _ in range(CAP))))
    assert [r[0] for r in lost] == [200] * CAP
    crashed.process.kill()  # no stream of it says goodbye
    crashed.process.wait(10)
    killed = time.monotonic()
    assert loop.run_until_complete(attempt(alive.port, token))[0] == 429
    again = []

    def slot_free() -> bool:
        again.append(loop.run_until_complete(attempt(alive.port, token)))
        return again[-1][0] == 200

    ttl = 3 * settings.JOB_STREAM_KEEPALIVE
    wait_for(slot_free, timeout=ttl + 10, interval=1.0, message="the crashed process's slots to expire")
    took = time.monotonic() - killed
    loop.run_until_complete(close_all([r[4] for r in (*lost, *again) if r[4]]))
    assert took <= ttl + 5, took


# --- found item 7: a stream ends when its user or token is no longer valid -----------------------
def closing_event(stream: EventStream):
    """Read to the end; the last event (the stream must end by itself within the time out)."""
    events = list(stream.events())
    stream.close()
    return [e for e in events if e.kind != "comment"]


def test_streams_end_when_the_user_is_deactivated_changes_password_is_demoted_or_the_token_expires(start_server):
    server = start_server()
    inactive, changed, demoted, expiring = UserFactory(), UserFactory(), UserFactory(is_staff=True), UserFactory()
    job = {"celery_task_name": "long_running_task", "args": [1]}
    status, owned = server.request("POST", "/api/v1/jobs/", token=token_for(inactive), body=job)
    assert status == 201, owned
    timeout = settings.JOB_STREAM_KEEPALIVE + 10  # re-checked every keep-alive (15 s): the default
    streams = {
        "inactive": EventStream(
            server.port, f"/api/v1/jobs/{owned['id']}/stream/", token=token_for(inactive), timeout=timeout
        ),
        "changed": EventStream(server.port, LIST, token=token_for(changed), timeout=timeout),
        "demoted": EventStream(server.port, LIST, token=token_for(demoted), timeout=timeout),
        "expiring": EventStream(server.port, LIST, token=token_for(expiring, seconds=3), timeout=timeout),
    }
    assert {name: s.status for name, s in streams.items()} == dict.fromkeys(streams, 200)
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    changed.set_password("a new password 123")
    changed.save(update_fields=["password"])
    demoted.is_staff = False
    demoted.save(update_fields=["is_staff"])
    started = time.monotonic()
    ends = {name: closing_event(stream)[-1] for name, stream in streams.items()}
    assert time.monotonic() - started < timeout
    assert {name: e.kind for name, e in ends.items()} == dict.fromkeys(streams, "closed"), ends
    assert ends["inactive"].data["code"] == "user_inactive"
    assert ends["changed"].data["code"] == "password_changed"
    assert ends["demoted"].data["code"] == "permissions_changed"
    assert ends["expiring"].data["code"] == "token_not_valid"
    assert all(e.data["message"] for e in ends.values())
    assert server.request("GET", "/api/v1/jobs/", token=token_for(demoted))[0] == 200  # still a user: reconnect


# --- found item 15: the web process stops within a bound on SIGTERM ------------------------------
def test_the_procfile_web_process_stops_within_its_graceful_timeout_whatever_its_streams_do(start_server, loop):
    server = start_server()
    users = [UserFactory() for _ in range(3)]
    opened = loop.run_until_complete(
        asyncio.gather(*(attempt(server.port, token_for(user)) for user in users for _ in range(CAP)))
    )
    assert [r[0] for r in opened] == [200] * 30
    reading, stalled, closed = opened[:10], opened[10:20], opened[20:]
    for _, _, _, _, writer in stalled:  # the client stops reading; its socket stays open
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        loop.run_until_complete(asyncio.sleep(0))
        writer.transport.pause_reading()
    loop.run_until_complete(close_all([r[4] for r in closed]))
    time.sleep(1)

    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)

    async def read_to_end(reader):
        lines = []
        while line := await reader.readline():
            lines.append(line)
        return lines

    told = loop.run_until_complete(
        asyncio.wait_for(asyncio.gather(*(read_to_end(r[3]) for r in reading)), GRACEFUL + 5)
    )
    server.process.wait(timeout=GRACEFUL + 5)
    took = time.monotonic() - started
    print(f"\nSIGTERM -> exit in {took:.1f} s (graceful timeout {GRACEFUL:g} s)")
    loop.run_until_complete(close_all([r[4] for r in (*reading, *stalled)]))
    assert took < GRACEFUL + 5
    assert all(b"event: closed" in b"".join(lines) and b"server_shutdown" in b"".join(lines) for lines in told)
    options = procfile_web_options()  # the bound for what is left (a stream stuck in a write)
    assert options[options.index("--timeout-graceful-shutdown") + 1] == str(GRACEFUL)
