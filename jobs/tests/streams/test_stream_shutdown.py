"""A web process's event loop ending while streams are open (the tests' in-process server, or any server
whose loop stops while its process goes on): the streams end with their last event, and nothing they
opened (Redis connections, the subscription, client sockets) outlives the loop.

Left open, a connection is closed by the garbage collector after its loop is gone: a ResourceWarning
at some later, unrelated moment, and the channel keeps a subscriber until then (the publisher reads
rows back for nobody)."""

import gc
import logging
import sys

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from jobs.live import channel
from jobs.streams.guard import take_slot
from jobs.streams.hub import close_current_hub, current_hub
from taskhub.testing import EventStream, wait_for
from taskhub.testing.browser import AsgiLiveServer


class Unraisable:
    """What the garbage collector and the event loops could not raise (``sys.unraisablehook``)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self):
        self.previous, sys.unraisablehook = sys.unraisablehook, self.hook
        return self

    def hook(self, unraisable) -> None:
        self.seen.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value} ({unraisable.object!r})")

    def __exit__(self, *exc) -> None:
        gc.collect()
        sys.unraisablehook = self.previous


def subscribers() -> int:
    client = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL)
    try:
        return client.pubsub_numsub(channel())[0][1]
    finally:
        client.close()


def test_a_slot_released_after_its_hub_closed_opens_no_new_connection(db):
    """The hub's loop is ending: a stream's late clean-up must not open a connection on it."""

    async def scenario():
        hub = current_hub()
        first, second = [await take_slot(hub, user_id=1) for _ in range(2)]
        assert first.in_redis and second.in_redis and hub.client is not None
        await close_current_hub()
        await first.release()  # the other stream still holds the hub
        opened = hub.client
        await second.release()
        return opened

    with Unraisable() as unraisable:
        assert async_to_sync(scenario)() is None
    assert unraisable.seen == []


@pytest.mark.timeout(60)
def test_stopping_the_server_ends_its_open_streams_and_leaves_nothing_open(transactional_db):
    token = str(AccessToken.for_user(UserFactory()))
    wait_for(lambda: subscribers() == 0, timeout=10, message="no subscriber left by an earlier test")
    with Unraisable() as unraisable:
        server = AsgiLiveServer().start()
        streams = [EventStream(server.port, path, token=token) for path in ("/api/v1/jobs/stream/",) * 2]
        for stream in streams:
            assert stream.status == 200
            stream.next()  # subscribed once the first event (a comment or a state) came
        assert subscribers() == 1
        server.stop()
        assert not server.thread.is_alive()
        for stream in streams:
            events = list(stream.events())
            assert events and events[-1].kind == "closed", events
            assert events[-1].data["code"] == "server_shutdown"
            stream.close()
        assert subscribers() == 0
    assert unraisable.seen == []


def test_the_server_stops_without_cutting_its_streams(transactional_db, caplog):
    """Its streams end by themselves at once (as on a SIGTERM): uvicorn's graceful shutdown does not
    run out and cancel them half-way."""
    token = str(AccessToken.for_user(UserFactory()))
    server = AsgiLiveServer().start()
    stream = EventStream(server.port, "/api/v1/jobs/stream/", token=token)
    stream.next()
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's own: it does not propagate to the root
    uvicorn_log.addHandler(caplog.handler)
    try:
        server.stop()
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    stream.close()
    said = [record.getMessage() for record in caplog.records]
    assert not [line for line in said if "timeout graceful shutdown" in line], said
