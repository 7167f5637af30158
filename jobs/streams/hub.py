"""What the open streams of one web process share: one Redis subscription, one small pool of Redis
connections for their counting (jobs/streams/guard.py), and the process's shutdown.

- **One subscription.** Every stream of the process reads the job changes from one ``PubSub`` on one
  connection (redis.asyncio): a reader task fans each message out to the streams that follow that job
  (or a list). The channel is subscribed when the first stream comes and unsubscribed (the
  connections closed) when the last one goes, so the publisher's ``PUBSUB NUMSUB`` still tells it
  whether anybody listens. A Redis error ends the subscription: the streams poll the rows meanwhile,
  and the next stream to wait subscribes again after ``RESUBSCRIBE_SECONDS``.
- **A few connections.** Commands (the per-user stream counts) share a blocking pool of
  ``COMMAND_CONNECTIONS``: with the subscription, at most three connections per web process
  whatever the number of streams.
- **Shutdown.** A SIGTERM or SIGINT to the web process (uvicorn's handler, chained) sets ``closing``:
  every stream sends its last event and ends at once, so uvicorn's graceful shutdown does not wait on
  them (the Procfile's ``--timeout-graceful-shutdown`` bounds what is left).

A hub belongs to one event loop (uvicorn has one per process; a test's async client may run a loop
per request).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import weakref
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from django.conf import settings

from ..live import JobState, channel

logger = logging.getLogger(__name__)

COMMAND_CONNECTIONS = 2
RESUBSCRIBE_SECONDS = 5.0
BUFFER_MAX = 1000  # states waiting for one stream; beyond, it misses them until its next re-read


@dataclass(eq=False)
class Subscription:
    """One stream's share of the subscription: the states for it since it last looked."""

    job_id: str | None  # None: every job (a list stream filters them itself)
    states: list[JobState] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    def __init__(self) -> None:
        self.holders = 0  # streams using this hub (its connections close when none is left)
        self.subscriptions: set[Subscription] = set()
        self.client: aioredis.Redis | None = None
        self.pubsub: aioredis.client.PubSub | None = None
        self.reader: asyncio.Task | None = None
        self.retry_at = 0.0
        self.lock = asyncio.Lock()
        self.closed = False  # its loop is ending: no connection is opened any more (close_current_hub)

    # --- the process's Redis ------------------------------------------------------------------
    def redis(self) -> aioredis.Redis | None:
        """The command client (a few pooled connections), or None without Redis."""
        if not settings.JOB_EVENTS_REDIS_URL or self.closed:
            return None
        if self.client is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                settings.JOB_EVENTS_REDIS_URL,
                max_connections=COMMAND_CONNECTIONS + 1,  # + the subscription's
                timeout=5,
                socket_connect_timeout=2,
            )
            self.client = aioredis.Redis(connection_pool=pool)
        return self.client

    @property
    def subscribed(self) -> bool:
        return self.reader is not None and not self.reader.done()

    def hold(self) -> None:
        self.holders += 1

    async def drop(self) -> None:
        self.holders -= 1
        if self.holders <= 0:
            async with self.lock:
                if self.holders <= 0:
                    await self._close()

    # --- subscriptions ------------------------------------------------------------------------
    async def subscribe(self, job_id: str | None) -> Subscription:
        """Follow the changes of ``job_id`` (None: all); subscribed once this returns, when Redis is
        up (a change published after it reaches the stream)."""
        subscription = Subscription(job_id)
        self.subscriptions.add(subscription)
        try:
            await self.ensure_subscribed()
        except BaseException:  # cancelled (its client left): nothing is kept for it
            self.subscriptions.discard(subscription)
            raise
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    async def ensure_subscribed(self) -> None:
        if self.subscribed or self.closed or not settings.JOB_EVENTS_REDIS_URL or time.monotonic() < self.retry_at:
            return
        async with self.lock:
            if self.subscribed or self.closed or time.monotonic() < self.retry_at:
                return
            pubsub = self.redis().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel())
            except (redis.RedisError, OSError) as exc:
                await self._lost(pubsub, exc)
                return
            except BaseException:  # cancelled half-way: its connection goes back closed
                await _to_the_end(_quietly(pubsub.aclose()))
                raise
            self.pubsub = pubsub
            self.reader = asyncio.get_running_loop().create_task(self._read(pubsub))

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None or message["type"] != "message":
                    continue
                state = JobState.from_message(message["data"])
                for subscription in self.subscriptions:
                    if subscription.job_id in (None, state.job_id) and len(subscription.states) < BUFFER_MAX:
                        subscription.states.append(state)
                        subscription.wake.set()
        except (redis.RedisError, OSError) as exc:
            if self.pubsub is pubsub:
                self.pubsub = None
            await self._lost(pubsub, exc)

    async def _lost(self, pubsub: aioredis.client.PubSub, exc: Exception) -> None:
        logger.warning("Live progress: Redis pub/sub unavailable (%s); streams poll the rows meanwhile.", exc)
        self.retry_at = time.monotonic() + RESUBSCRIBE_SECONDS
        await _quietly(pubsub.aclose())
        for subscription in self.subscriptions:
            subscription.wake.set()  # their feeds switch to polling now

    async def _close(self) -> None:
        """Close the subscription and the connections. The last stream's clean-up does this from a task
        that is often cancelled already (its client left) and may be cancelled again (the server's
        shutdown cancels what outlives its graceful timeout): the closing runs to its end regardless.
        Cut half-way, the connections would be dropped open, and closed by the garbage collector at
        some later moment (ResourceWarning), the subscription left on the channel until then."""
        reader, pubsub, client = self.reader, self.pubsub, self.client
        self.reader = self.pubsub = self.client = None
        await _to_the_end(_close_all(reader, pubsub, client))


async def _close_all(
    reader: asyncio.Task | None, pubsub: aioredis.client.PubSub | None, client: aioredis.Redis | None
) -> None:
    if reader is not None:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    if pubsub is not None:
        await _quietly(pubsub.aclose())
    if client is not None:
        await _quietly(client.aclose(close_connection_pool=True))


async def _to_the_end(work) -> None:
    """Await ``work`` (a coroutine) to its end even if the awaiting task is cancelled meanwhile; the
    cancel is raised after it."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled or task.cancelled():
        raise asyncio.CancelledError
    task.result()


async def _quietly(closing) -> None:
    try:
        await closing
    except (redis.RedisError, OSError):
        pass


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def current_hub() -> Hub:
    """This event loop's hub."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
        _watch_shutdown_signals()
    return hub


async def close_current_hub() -> None:
    """Close this event loop's hub: its Redis subscription and connections. For a server whose event
    loop ends while its process goes on (the tests' in-process live server): left open, they would be
    closed by the garbage collector after their loop (ResourceWarning), and the channel would keep a
    subscriber until then. A stream that cleans up after this opens nothing again (its Redis entries
    expire by themselves)."""
    hub = _hubs.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        hub.closed = True
        await hub._close()


# --- shutdown -------------------------------------------------------------------------------------
_closing = threading.Event()  # the process is stopping: every stream ends
_closing_waiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()
_ended_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()  # end_streams
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def closing() -> asyncio.Event:
    """Set when the web process is stopping (this loop's view of it)."""
    loop = asyncio.get_running_loop()
    event = _closing_waiters.get(loop)
    if event is None:
        event = _closing_waiters[loop] = asyncio.Event()
        if _closing.is_set() or loop in _ended_loops:
            event.set()
    return event


def end_streams(loop: asyncio.AbstractEventLoop) -> None:
    """End the open streams of ``loop`` (and refuse its new ones) as a SIGTERM ends the process's: for a
    server stopping its loop while the process goes on (the tests' in-process server). Thread-safe."""
    _ended_loops.add(loop)
    event = _closing_waiters.get(loop)
    if event is not None and not loop.is_closed():
        loop.call_soon_threadsafe(event.set)


def begin_shutdown() -> None:
    """End every open stream of this process (called on SIGTERM/SIGINT; safe from a signal handler)."""
    _closing.set()
    for loop, event in list(_closing_waiters.items()):
        if not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def _watch_shutdown_signals() -> None:
    """Chain the server's SIGTERM/SIGINT handlers (uvicorn's, which start its graceful shutdown) with
    :func:`begin_shutdown`. Only a Python handler is chained: a process without one (a test's thread,
    a default handler) is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        previous = signal.getsignal(signum)
        if not callable(previous) or getattr(previous, "ends_streams", False):
            continue

        def handler(number, frame, previous=previous):
            begin_shutdown()
            previous(number, frame)

        handler.ends_streams = True
        signal.signal(signum, handler)
