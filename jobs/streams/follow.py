"""Following one job from a command, blocking: the same changes as its stream (jobs/streams/feeds.py).

Redis pub/sub when ``JOB_EVENTS_REDIS_URL`` is set, re-reading the row every ``JOB_STREAM_KEEPALIVE``
seconds as well; without Redis, re-reading it every ``JOB_STREAM_POLL_INTERVAL`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from django.conf import settings

from taskhub.errors import NotFound

from ..live import JobState, channel, read_state

logger = logging.getLogger(__name__)


def iter_job_states(job_id, timeout: float | None = None) -> Iterator[JobState]:
    """The job's state now, then each newer one, until it is terminal or ``timeout`` seconds passed.

    For `manage.py` commands (e.g. a progress bar): the same Redis channel as the streams, re-reading
    the row every JOB_STREAM_KEEPALIVE seconds with Redis, every JOB_STREAM_POLL_INTERVAL without.
    Raises NotFound for an unknown job; stops quietly if the row is deleted.
    """
    deadline = time.monotonic() + timeout if timeout is not None else float("inf")
    pubsub = _subscribe_blocking()
    try:
        current = read_state(job_id)
        if current is None:
            raise NotFound(f"Job {job_id} does not exist.")
        yield current
        last_read = time.monotonic()
        while not current.terminal and time.monotonic() < deadline:
            period = settings.JOB_STREAM_KEEPALIVE if pubsub else settings.JOB_STREAM_POLL_INTERVAL
            wait = max(0.0, min(last_read + period, deadline) - time.monotonic())
            states, pubsub = _receive_blocking(pubsub, wait, str(current.job_id))
            if time.monotonic() >= last_read + period:
                last_read, fresh = time.monotonic(), read_state(job_id)
                if fresh is None:
                    return
                states.append(fresh)
            for state in states:
                if state.newer_than(current):
                    current = state
                    yield state
    finally:
        if pubsub is not None:
            pubsub.close()


def _subscribe_blocking() -> redis.client.PubSub | None:
    if not settings.JOB_EVENTS_REDIS_URL:
        return None
    pubsub = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL, socket_connect_timeout=2).pubsub(
        ignore_subscribe_messages=True
    )
    try:
        pubsub.subscribe(channel())
    except (redis.RedisError, OSError) as exc:
        logger.warning("Live progress: Redis pub/sub unavailable (%s); polling the row.", exc)
        pubsub.close()
        return None
    return pubsub


def _receive_blocking(pubsub, timeout: float, job_id: str) -> tuple[list[JobState], redis.client.PubSub | None]:
    if pubsub is None:
        time.sleep(timeout)
        return [], None
    try:
        message = pubsub.get_message(timeout=timeout)
        states = []
        while message is not None:
            if message["type"] == "message" and (state := JobState.from_message(message["data"])).job_id == job_id:
                states.append(state)
            message = pubsub.get_message(timeout=0)
        return states, pubsub
    except (redis.RedisError, OSError) as exc:
        logger.warning("Live progress: Redis pub/sub lost (%s); polling the row.", exc)
        pubsub.close()
        return [], None
