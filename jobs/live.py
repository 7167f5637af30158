"""A job's live state: what a stream shows, and the publisher the services call after each change.

The worker-side services call :func:`job_changed` once per committed change (every transition,
every progress write). Once the transaction commits, the job's state is read back by primary key
and published on Redis pub/sub when Redis is configured (``JOB_EVENTS_REDIS_URL``) and a stream
is subscribed (with no subscriber nothing is read back or sent: one ``PUBSUB NUMSUB``). A worker's
pool process asks that on a thread of its own while nobody listens (``_Background``). Without Redis
(the embedded default) nothing is published: streams poll the rows instead. Publishing never makes
a job write fail: a Redis outage logs a warning and pauses publishing briefly; streams re-read the
rows periodically, so they catch up.

Every state carries a *version* so that a subscriber can drop a message older than what it already
showed (a snapshot it read itself, or a late message): ``(attempts, status rank, heartbeat_at,
cancel requested)``. Each write a stream shows moves it forward: a retry or re-queue raises
``attempts``; pending -> running -> finished raise the rank; progress writes and finishing stamp
``heartbeat_at``; a cancel request sets the flag. No change marker column is needed (no new index,
progress writes stay HOT updates in PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import TERMINAL_STATUSES, Job, JobStatus

logger = logging.getLogger(__name__)

# The columns a state is made of: what changes while a job lives, plus what a dashboard lists it by.
CHANGING = (
    "id",
    "status",
    "progress",
    "progress_meta",
    "result",
    "error",
    "attempts",
    "started_at",
    "finished_at",
    "cancel_requested_at",
)
IDENTITY = ("name", "celery_task_name", "task_type", "priority", "owner_id", "created_at")
COLUMNS = (*CHANGING, *IDENTITY, "heartbeat_at")
_RANK = {JobStatus.PENDING: 0, JobStatus.RUNNING: 1, **{status: 2 for status in TERMINAL_STATUSES}}
# After a failed publish, the next ones are skipped for this long (a job write never waits on Redis).
PUBLISH_PAUSE_SECONDS = 5.0
_TIMEOUT = 0.5


def json_value(value: Any) -> Any:
    """As the API's serializers write it: ISO 8601 in the current time zone, "Z" for UTC; UUIDs as text."""
    if isinstance(value, datetime):
        text = timezone.localtime(value).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@dataclass(frozen=True)
class JobState:
    """One job as a stream shows it: JSON-ready fields and the version that orders them."""

    version: tuple[int, int, int, int]
    fields: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobState:
        heartbeat = row["heartbeat_at"]
        version = (
            row["attempts"],
            _RANK[row["status"]],
            int(heartbeat.timestamp() * 1_000_000) if heartbeat else 0,
            int(row["cancel_requested_at"] is not None),
        )
        return cls(version, {name: json_value(row[name]) for name in COLUMNS if name != "heartbeat_at"})

    @classmethod
    def from_message(cls, message: bytes | str) -> JobState:
        body = json.loads(message)
        return cls(tuple(body["v"]), body["f"])

    def to_message(self) -> str:
        return json.dumps({"v": self.version, "f": self.fields}, separators=(",", ":"))

    @property
    def job_id(self) -> str:
        return self.fields["id"]

    @property
    def status(self) -> str:
        return self.fields["status"]

    @property
    def progress(self) -> int:
        return self.fields["progress"]

    @property
    def message(self) -> str:
        meta = self.fields["progress_meta"]
        return str(meta.get("message", "")) if isinstance(meta, dict) else ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def event_id(self) -> str:
        """Opaque to clients; the same state always has the same id."""
        attempts, rank, heartbeat, cancel = self.version
        return f"{self.job_id}.{attempts}.{rank}{cancel}.{heartbeat}"

    def newer_than(self, other: JobState | None) -> bool:
        """Whether a stream that showed ``other`` should show this state."""
        if other is None or self.version > other.version:
            return True
        return self.version == other.version and self.fields != other.fields

    def data(self, *, identity: bool = False) -> dict[str, Any]:
        """The event's JSON: the API's fields that change (with ``identity``, also what lists name a job by)."""
        names = CHANGING + IDENTITY if identity else CHANGING
        data = {name: self.fields[name] for name in names}
        data.update(progress_message=self.message, attempt=self.fields["attempts"] + 1)
        return data


def read_states(jobs: QuerySet[Job]) -> list[JobState]:
    """The states of ``jobs`` (any filtered queryset), in one query."""
    return [JobState.from_row(row) for row in jobs.values(*COLUMNS)]


def read_state(job_id) -> JobState | None:
    """The job's state by primary key; None when there is no such row."""
    states = read_states(Job.objects.filter(id=job_id))
    return states[0] if states else None


# --- publishing -------------------------------------------------------------------------------


def channel() -> str:
    """The pub/sub channel of this deployment: channels are server-wide, so it names the Redis db."""
    url = settings.JOB_EVENTS_REDIS_URL
    db = urlsplit(url).path.strip("/") or "0"
    return f"{settings.JOB_EVENTS_CHANNEL}:db{db}"


@cache
def _client(url: str) -> redis.Redis:
    # redis-py's pool notices a fork (Celery's prefork pool) and opens new connections in the child.
    return redis.Redis.from_url(url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)


class _Listeners:
    """``PUBSUB NUMSUB`` of the channel, asked on a connection of this process's own (one per process,
    made again after a fork), without redis-py's client and pool around each command: their
    per-command bookkeeping (retries, observability counters, the pool's checks) cost this question
    several times what the round trip itself costs, and it is asked after every job write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: tuple[int, str] | None = None  # (pid, url) of the connection
        self._connection: redis.Connection | None = None

    def count(self, url: str, name: str) -> int:
        with self._lock:
            if self._made != (os.getpid(), url):
                pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)
                self._connection, self._made = pool.make_connection(), (os.getpid(), url)
            connection = self._connection
            for retry in (False, True):
                try:
                    connection.send_command("PUBSUB", "NUMSUB", name)
                    [_, listeners] = connection.read_response()
                    return listeners
                except BaseException as exc:
                    connection.disconnect()  # nothing half-read stays on it
                    # A connection Redis closed (a restart, an idle timeout): once more on a new one.
                    if retry or not isinstance(exc, redis.ConnectionError):
                        raise
            raise AssertionError("unreachable")


_listeners = _Listeners()


class _Publisher:
    paused_until = 0.0

    def publish(self, job_ids: Iterable) -> None:
        url = settings.JOB_EVENTS_REDIS_URL
        if not url or time.monotonic() < self.paused_until:
            return
        try:
            name = channel()
            # Nobody listening: no read-back, no message. Safe without a lock: our change is
            # committed before we ask, and a stream subscribes before it reads its first state,
            # so a stream that subscribes after this answer reads the change itself.
            if not _listeners.count(url, name):
                return
            client = _client(url)
            states = read_states(Job.objects.filter(id__in=list(job_ids)))
            pipe = client.pipeline(transaction=False)
            for state in states:
                pipe.publish(name, state.to_message())
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - never fail a job write; streams re-read the rows
            self.paused_until = time.monotonic() + PUBLISH_PAUSE_SECONDS
            logger.warning(
                "Live progress: could not publish a job change (%s); publishing paused for %gs, streams "
                "fall back to re-reading the rows.",
                exc,
                PUBLISH_PAUSE_SECONDS,
            )


_publisher = _Publisher()


def job_changed(job_id) -> None:
    """Publish the job's state once the current transaction commits (at once outside a transaction).

    Does nothing without Redis (streams poll then). Never raises.
    """
    if settings.JOB_EVENTS_REDIS_URL:
        transaction.on_commit(lambda: _publisher.publish([job_id]), robust=True)


def jobs_changed(job_ids: Iterable) -> None:
    """:func:`job_changed` for many jobs at once (a bulk create): one read and one Redis round trip."""
    if settings.JOB_EVENTS_REDIS_URL:
        job_ids = list(job_ids)
        transaction.on_commit(lambda: _publisher.publish(job_ids), robust=True)
