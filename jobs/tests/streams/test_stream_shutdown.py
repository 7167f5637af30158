"""A web process's event loop ending while streams are open (the tests' in-process server, or any server
whose loop stops while its process goes on): the streams end with their last event, and nothing they
opened (Redis connections, the subscription, client sockets) outlives the loop.

Left open, a connection is closed by the garbage collector after its loop is gone: a ResourceWarning
at some later, unrelated moment, and the channel keeps a subscriber until then (the publisher reads
rows back for nobody)."""

import asyncio
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
from jobs.streams.feeds import _Feed
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


async def cancelled_once(work, *, begun) -> None:
    """Run ``work`` (a coroutine), cancel it as soon as ``begun()`` holds, and wait for it to end."""
    task = asyncio.ensure_future(work)
    while not begun():
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def subscribers() -> int:
    client = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL)
    try:
        return client.pubsub_numsub(channel())[0][1]
    finally:
        client.close()


def test_a_slot_released_after_its_hub_closed_opens_no_new_connection(db):
    """The hub's loop is ending: a stream's late clean-up must not open a connection on it."""

    user = UserFactory()  # a user of its own: the entry left in Redis below expires by itself only

    async def scenario():
        hub = current_hub()
        first, second = [await take_slot(hub, user_id=user.pk) for _ in range(2)]
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


def test_a_hub_closing_in_a_task_cancelled_again_still_closes_its_connections(db):
    """The last stream's clean-up closes the hub's connections in a task that is already cancelled
    (its client left); a second cancel (uvicorn's shutdown, after its graceful timeout) must not
    leave them open: the subscription would stay on the channel, and the connections would be
    closed by the garbage collector later (ResourceWarning, CI's failure in an unrelated test)."""
    user = UserFactory()

    async def scenario():
        hub = current_hub()
        slot = await take_slot(hub, user_id=user.pk)  # a user of its own: no earlier test's slots
        await hub.subscribe(None)
        assert hub.subscribed and subscribers() == 1
        # Cancelled once the release's last step (the hub's close) has begun.
        await cancelled_once(slot.release(), begun=lambda: hub.client is None)
        return hub

    wait_for(lambda: subscribers() == 0, timeout=10, message="no subscriber left by an earlier test")
    with Unraisable() as unraisable:
        hub = async_to_sync(scenario)()
        assert subscribers() == 0
        assert hub.client is None and hub.pubsub is None
    assert unraisable.seen == []


def test_a_stream_cancelled_while_it_subscribes_leaves_no_hold_and_no_connection(db):
    """A client that leaves while its stream is still subscribing (the browser navigates on): the
    hub must not go on counting that stream (it would never close its connections, and the channel
    would keep a subscriber for nobody) nor buffer states for it."""

    async def scenario():
        hub = current_hub()
        # Cancelled once SUBSCRIBE is sent and its answer awaited.
        await cancelled_once(_Feed(None).open(), begun=hub.lock.locked)
        return hub

    wait_for(lambda: subscribers() == 0, timeout=10, message="no subscriber left by an earlier test")
    with Unraisable() as unraisable:
        hub = async_to_sync(scenario)()
        assert (hub.holders, hub.subscriptions, hub.client) == (0, set(), None)
        assert subscribers() == 0
    assert unraisable.seen == []


@pytest.mark.parametrize("in_redis", [True, False], ids=["counted in Redis", "counted per process"])
def test_a_response_dropped_before_its_first_chunk_gives_its_hold_back(db, settings, in_redis):
    """The view took a slot, then the client left before the stream's generator ever ran (so its
    ``finally`` never does): the slot's hold on the hub goes when the slot is collected, whether it
    was counted in Redis or in the process. A hold kept forever kept the hub's subscription open for
    the process's life (every change then read back for a listener that is not there)."""
    if not in_redis:
        settings.JOB_EVENTS_REDIS_URL = ""
    user = UserFactory()

    async def scenario():
        hub = current_hub()
        slot = await take_slot(hub, user_id=user.pk)
        assert slot.in_redis is in_redis and hub.holders == 1
        del slot
        gc.collect()
        return hub.holders

    with Unraisable() as unraisable:
        assert async_to_sync(scenario)() == 0
    assert unraisable.seen == []
