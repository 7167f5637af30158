"""What keeps an open stream within bounds: a cap on each user's open streams, and the user and the
token checked again while a stream lasts.

- **Cap.** A user has at most ``JOB_STREAM_MAX_PER_USER`` open streams. With Redis
  (``JOB_EVENTS_REDIS_URL``) they are counted across web processes: one sorted set per user of
  stream ids scored by when each entry expires (``SLOT_TTL_KEEPALIVES`` keep-alives ahead); each
  stream pushes its entry's expiry on at every keep-alive and removes it when it ends, so the entries
  of a process that crashed expire by themselves. One Lua script drops the expired entries, counts
  and adds, atomically. Without Redis (or when it fails) they are counted per process.
- **Re-check.** Every ``JOB_STREAM_KEEPALIVE`` seconds the stream's request is authenticated again
  as at its start (the same DRF authenticators: an expired token, a deactivated user, a changed
  password, a logged-out session fail as they fail in the API), and the user must still be the same
  user with the same staff flag (what a stream may show depends on it). Otherwise the stream ends.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.contrib import auth
from django.utils.functional import SimpleLazyObject

from .hub import Hub

logger = logging.getLogger(__name__)

SLOT_TTL_KEEPALIVES = 3

# KEYS[1] the user's set; ARGV: now, expires at, cap, stream id, key ttl (seconds). 1: taken, 0: full.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

_local = Counter()  # user id -> open streams in this process (without Redis)
_local_lock = threading.Lock()


def _key(user_id: int) -> str:
    return f"{settings.JOB_EVENTS_CHANNEL}:streams:{user_id}"


def _local_release(user_id: int) -> None:
    with _local_lock:
        _local[user_id] -= 1
        if _local[user_id] <= 0:
            del _local[user_id]


def _ttl() -> float:
    return settings.JOB_STREAM_KEEPALIVE * SLOT_TTL_KEEPALIVES


@dataclass
class Slot:
    """One open stream counted against its user."""

    hub: Hub
    user_id: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    in_redis: bool = False
    released: bool = False

    async def refresh(self) -> None:
        """Push the entry's expiry on (at each keep-alive)."""
        if self.in_redis and (client := self.hub.redis()) is not None:
            try:
                await client.zadd(_key(self.user_id), {self.id: time.time() + _ttl()}, xx=True)
            except (redis.RedisError, OSError) as exc:
                logger.warning("Live progress: could not refresh a stream's slot (%s).", exc)

    def __del__(self) -> None:
        # A response dropped before its first chunk never runs its generator (so never ``release``):
        # its hold on the hub and the process's count go down here; a Redis entry expires by itself.
        # (Nothing can be awaited here: the hub's connections close at the next stream's end.)
        if not self.released:
            self.released = True
            self.hub.holders -= 1
            if not self.in_redis:
                _local_release(self.user_id)

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            if self.in_redis:
                if (client := self.hub.redis()) is None:  # its hub closed: the entry expires by itself
                    return
                try:
                    await client.zrem(_key(self.user_id), self.id)
                except (redis.RedisError, OSError) as exc:  # the entry expires by itself
                    logger.warning("Live progress: could not free a stream's slot (%s).", exc)
            else:
                _local_release(self.user_id)
        finally:
            await self.hub.drop()


async def take_slot(hub: Hub, user_id: int) -> Slot | None:
    """A slot for one more stream of ``user_id``; None when the user has ``JOB_STREAM_MAX_PER_USER``."""
    hub.hold()
    try:
        slot = await _take(hub, user_id)
    except BaseException:  # cancelled (the client left): an entry it may have made in Redis expires
        hub.holders -= 1
        raise
    if slot is None:
        await hub.drop()
    return slot


async def _take(hub: Hub, user_id: int) -> Slot | None:
    cap, slot_id = settings.JOB_STREAM_MAX_PER_USER, uuid.uuid4().hex
    client = hub.redis()
    if client is not None:
        now = time.time()
        try:
            taken = await client.eval(_TAKE, 1, _key(user_id), now, now + _ttl(), cap, slot_id, int(_ttl()) + 1)
        except (redis.RedisError, OSError) as exc:
            logger.warning("Live progress: Redis unavailable for the stream count (%s); counting per process.", exc)
        else:
            return Slot(hub, user_id, slot_id, in_redis=True) if taken else None
    with _local_lock:
        if _local[user_id] >= cap:
            return None
        _local[user_id] += 1
    return Slot(hub, user_id, slot_id)


def fresh_session_user(request) -> None:
    """Make ``request.user`` (the session's) be read again from the session store and the database."""
    if hasattr(request, "session") and request.session.session_key:
        request.session = request.session.__class__(request.session.session_key)
        request.user = SimpleLazyObject(lambda: auth.get_user(request))
