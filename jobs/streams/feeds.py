"""Following jobs as they change: the async feeds the stream views serve (a blocking one for
commands: jobs/streams/follow.py).

Changes arrive on Redis pub/sub when ``JOB_EVENTS_REDIS_URL`` is set (one subscription per web
process for all its streams: jobs/streams/hub.py), and the rows are re-read
every ``JOB_STREAM_KEEPALIVE`` seconds as well (a lost message or a Redis outage only delays a
stream). Without Redis (the embedded default) the rows are re-read every
``JOB_STREAM_POLL_INTERVAL`` seconds: the followed job by primary key; for a list, the active jobs,
the ones it saw active (by primary key) and the ones created since the last look. A state is shown
only when it is newer than the last one shown (:meth:`JobState.newer_than`).

An async feed holds no thread and no database connection while it waits: its reads run on this
process's few stream-database threads (``JOB_STREAM_DB_THREADS``), which keep one connection each
whatever the number of open streams.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..live import JobState, json_value, read_state, read_states
from ..models import ACTIVE_STATUSES, Job, JobStatus, Workflow, WorkflowStatus
from .hub import Hub, Subscription, current_hub

KEEPALIVE = "keepalive"  # nothing was sent for JOB_STREAM_KEEPALIVE seconds: send a comment
GONE = "gone"  # the followed job's (or workflow's) row was deleted
SETTLED = "settled"  # list_states(settle=True): a batch of changes was shown (the workflow feed looks then)
_SEEN_MAX = 10_000  # job versions a list feed remembers


# --- database reads off the event loop ----------------------------------------------------------
@cache
def _db_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.JOB_STREAM_DB_THREADS, thread_name_prefix="stream-db")


def _db_call(function: Callable[..., Any], args: tuple) -> Any:
    close_old_connections()  # these threads outlive requests: honour CONN_MAX_AGE and health checks here
    return function(*args)


async def run_db(function: Callable[..., Any], *args: Any) -> Any:
    """Run ORM code on the stream-database threads (not a thread per stream, not the request's)."""
    return await asyncio.get_running_loop().run_in_executor(_db_executor(), _db_call, function, args)


# --- where newer states come from ---------------------------------------------------------------
class _Feed:
    """The states published for this stream (this process's one subscription: jobs/streams/hub.py),
    or, without Redis or while it is down, only the clock."""

    def __init__(self, job_id: str | None = None) -> None:
        self.job_id = job_id
        self.hub: Hub | None = None
        self.subscription: Subscription | None = None

    @property
    def period(self) -> float:
        """Seconds between two reads of the rows."""
        subscribed = self.hub is not None and self.hub.subscribed
        return settings.JOB_STREAM_KEEPALIVE if subscribed else settings.JOB_STREAM_POLL_INTERVAL

    async def open(self) -> None:
        self.hub = current_hub()
        self.hub.hold()
        try:
            self.subscription = await self.hub.subscribe(self.job_id)
        except BaseException:  # cancelled while subscribing (its client left): the hold goes too
            hub, self.hub = self.hub, None
            await hub.drop()
            raise

    async def close(self) -> None:
        hub, self.hub = self.hub, None
        if hub is not None:
            hub.unsubscribe(self.subscription)
            await hub.drop()

    async def receive(self, timeout: float) -> list[JobState]:
        """The states published within ``timeout`` seconds (returns at the first batch)."""
        await self.hub.ensure_subscribed()  # again after a Redis error (at most every few seconds)
        subscription = self.subscription
        if not subscription.states:
            try:
                await asyncio.wait_for(subscription.wake.wait(), max(0.0, timeout))
            except TimeoutError:
                pass
        states, subscription.states = subscription.states, []
        subscription.wake.clear()
        return states


@dataclass
class _Clock:
    """When a stream re-reads the rows, owes the client a keep-alive comment, or has lived long enough."""

    period: float
    started: float = field(default_factory=time.monotonic)
    last_read: float = field(default_factory=time.monotonic)
    last_sent: float = field(default_factory=time.monotonic)

    def wait(self) -> float:
        keepalive_at = self.last_sent + settings.JOB_STREAM_KEEPALIVE
        return max(0.0, min(self.last_read + self.period, keepalive_at) - time.monotonic())

    def read_due(self) -> bool:
        return time.monotonic() >= self.last_read + self.period

    def keepalive_due(self) -> bool:
        return time.monotonic() >= self.last_sent + settings.JOB_STREAM_KEEPALIVE

    def expired(self) -> bool:
        return time.monotonic() >= self.started + settings.JOB_STREAM_MAX_SECONDS


# --- one job ------------------------------------------------------------------------------------
async def job_states(job_id) -> AsyncIterator[JobState | str]:
    """The job's state at once, then every newer state; ``KEEPALIVE`` when idle; ``GONE`` if the row is
    deleted. Ends after a terminal state, or after ``JOB_STREAM_MAX_SECONDS`` (the client reconnects).
    """
    job_id = str(job_id)
    feed = _Feed(job_id)
    await feed.open()  # before the first read, so no change falls between the two
    try:
        current = await run_db(read_state, job_id)
        if current is None:
            yield GONE
            return
        yield current
        clock = _Clock(feed.period)
        while not current.terminal and not clock.expired():
            states = [s for s in await feed.receive(clock.wait()) if s.job_id == job_id]
            clock.period = feed.period
            if clock.read_due():
                clock.last_read = time.monotonic()
                fresh = await run_db(read_state, job_id)
                if fresh is None:
                    yield GONE
                    return
                states.append(fresh)
            for state in states:
                if state.newer_than(current):
                    shown, current = current, state
                    if state.fields != shown.fields:  # not only a later heartbeat (a flush of the same progress)
                        clock.last_sent = time.monotonic()
                        yield state
            if clock.keepalive_due():
                clock.last_sent = time.monotonic()
                yield KEEPALIVE
    finally:
        await feed.close()


# --- many jobs ----------------------------------------------------------------------------------
@dataclass
class ListScope:
    """Which jobs a list stream shows, built by the view from the user and the list's filters.

    ``candidates``: the jobs the user may see that pass every filter except ``status`` (a job's only
    filtered field that changes); ``statuses``: the status filter, empty for any; ``owner_id``: the
    owner a non-staff user is limited to; ``filtered``: whether filters other than status apply.
    """

    candidates: QuerySet[Job]
    statuses: frozenset[str]
    owner_id: int | None
    filtered: bool


def _list_read(scope: ListScope, tracked: list[str], since) -> list[JobState]:
    """The active candidates (newest first, at most JOB_STREAM_LIST_LIMIT), the tracked ones by
    primary key, and the ones created since ``since``: each part uses an index."""
    # The running jobs apart (``running_apart``: the list orders' indexes leave them out, migration
    # 0026), the others in the list's order, newest first, until the limit.
    recent = Q(status__in=list(ACTIVE_STATUSES)) | Q(created_at__gte=since) if since else Q(status__in=ACTIVE_STATUSES)
    candidates = scope.candidates.filter(recent).order_by("-created_at", "-id").running_apart()
    jobs = candidates[: settings.JOB_STREAM_LIST_LIMIT]
    states = read_states(jobs)
    if tracked:
        states += read_states(scope.candidates.filter(id__in=tracked))
    return states


def _members(scope: ListScope, job_ids: list[str]) -> set[str]:
    return {str(pk) for pk in scope.candidates.filter(id__in=job_ids).values_list("id", flat=True)}


async def list_states(scope: ListScope, *, settle: bool = False) -> AsyncIterator[JobState | str]:
    """The active jobs in ``scope`` at once, then every newer state of a job in it; ``KEEPALIVE`` when
    idle (and after the first snapshot); with ``settle``, ``SETTLED`` after any other batch of states
    shown. Ends after ``JOB_STREAM_MAX_SECONDS`` (the client reconnects)."""
    feed = _Feed()
    await feed.open()
    seen: OrderedDict[str, JobState] = OrderedDict()  # the last state shown, per job
    members: dict[str, bool] = {}  # whether a job passes the filters other than status (never changes)
    try:
        clock = _Clock(feed.period)
        since = timezone.now()
        states = await run_db(_list_read, scope, [], None)
        first = True
        while True:
            shown = False
            for state in await _in_scope(scope, states, members):
                previous = seen.get(state.job_id)
                if state.newer_than(previous):
                    seen[state.job_id] = state
                    seen.move_to_end(state.job_id)
                    if previous and state.fields == previous.fields:
                        continue  # only a later heartbeat
                    if not scope.statuses or state.status in scope.statuses:
                        shown = True
                        yield state
            while len(seen) > _SEEN_MAX:
                seen.popitem(last=False)
            if shown:
                clock.last_sent = time.monotonic()
            if first or clock.keepalive_due():  # first: the snapshot is complete (even if empty)
                first, clock.last_sent = False, time.monotonic()
                yield KEEPALIVE
            elif shown and settle:
                yield SETTLED
            if clock.expired():
                return
            states = await feed.receive(clock.wait())
            clock.period = feed.period
            if clock.read_due():
                clock.last_read, now = time.monotonic(), timezone.now()
                tracked = [job_id for job_id, state in seen.items() if not state.terminal]
                states += await run_db(_list_read, scope, tracked, since - timedelta(seconds=1))
                since = now
    finally:
        await feed.close()


async def _in_scope(scope: ListScope, states: list[JobState], members: dict[str, bool]) -> list[JobState]:
    """The states of jobs the scope covers. Owner and status are checked here; the other filters
    once per job in the database, with the list's own filter code (the view built ``candidates``)."""
    states = [s for s in states if scope.owner_id is None or s.fields["owner_id"] == scope.owner_id]
    if not scope.filtered:
        return states
    unknown = list({s.job_id for s in states if s.job_id not in members})
    if unknown:
        found = await run_db(_members, scope, unknown)
        members.update({job_id: job_id in found for job_id in unknown})
        while len(members) > _SEEN_MAX:
            members.pop(next(iter(members)))
    return [s for s in states if members.get(s.job_id)]


# --- a workflow -----------------------------------------------------------------------------------
WORKFLOW_FIELDS = ("id", "name", "status", "steps_total", "steps_succeeded", "steps_failed", "steps_cancelled")
WORKFLOW_ENDS = (WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


@dataclass(frozen=True)
class WorkflowState:
    """A workflow as its stream shows it (``event: workflow``); ``ends``: it is finished and none of its
    steps can change any more by itself (none running, none released and pending); ``shown``: these
    fields were sent already (only the end is news)."""

    fields: dict[str, Any]
    ends: bool = False
    shown: bool = False

    @property
    def event_id(self) -> str:
        """Opaque to clients; the same state always has the same id."""
        f = self.fields
        return f"{f['id']}.{f['status']}.{f['steps_succeeded']}.{f['steps_failed']}.{f['steps_cancelled']}"


def read_workflow(workflow_id) -> WorkflowState | None:
    """The workflow's state by primary key; None when there is no such row."""
    workflow = Workflow.objects.filter(id=workflow_id).first()
    if workflow is None:
        return None
    fields = {name: json_value(getattr(workflow, name)) for name in WORKFLOW_FIELDS}
    fields.update(progress=workflow.progress, finished_at=json_value(workflow.finished_at))
    live = Q(status=JobStatus.RUNNING) | Q(status=JobStatus.PENDING, parents_remaining=0)
    ends = workflow.status in WORKFLOW_ENDS and not Job.objects.filter(live, workflow_id=workflow_id).exists()
    return WorkflowState(fields, ends)


async def workflow_states(scope: ListScope, workflow_id) -> AsyncIterator[JobState | WorkflowState | str]:
    """A workflow's steps as ``list_states`` shows them, and the workflow itself: its state after the
    first snapshot, then again after every batch of step changes (or keep-alive) that changed it. A
    workflow changes only in the transactions that change its steps, so looking after theirs is
    enough. Ends after a ``WorkflowState`` that ``ends`` (or ``GONE`` when the row was deleted)."""
    workflow_id = str(workflow_id)
    steps, shown = list_states(scope, settle=True), None
    last: dict[str, JobState] = {}  # the last state shown, per step
    try:
        async for item in steps:
            if not (isinstance(item, str) and item in (SETTLED, KEEPALIVE)):
                last[item.job_id] = item
                yield item
                continue
            fresh = await run_db(read_workflow, workflow_id)
            if fresh is None:
                yield GONE
                return
            if fresh.ends:
                # A step that finished after the batch just shown (the workflow's last, typically) is
                # read here, so that every step's end is shown before the workflow's.
                for state in await _steps_finished_since_shown(scope, last):
                    yield state
            if shown is None or fresh.fields != shown.fields:
                shown = fresh
                yield fresh
            elif fresh.ends:
                yield replace(fresh, shown=True)
            if fresh.ends:
                return
            if item == KEEPALIVE:
                yield KEEPALIVE
    finally:
        await steps.aclose()


async def _steps_finished_since_shown(scope: ListScope, last: dict[str, JobState]) -> list[JobState]:
    """The newer states of the steps last shown unfinished (read by primary key)."""
    unfinished = [job_id for job_id, state in last.items() if not state.terminal]
    if not unfinished:
        return []
    states = await run_db(read_states, scope.candidates.filter(id__in=unfinished))
    return [s for s in states if s.newer_than(last[s.job_id]) and s.fields != last[s.job_id].fields]
