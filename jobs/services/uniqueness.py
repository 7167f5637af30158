"""Unique jobs (issue 21): what a create with a unique key does when another job holds the key.

The database decides who holds a key: a partial unique index over (owner, unique_key) where the
job holds it (``unique_held``, set at creation, cleared by the door in the statement of the
transition that releases the key: ``UNIQUE_HELD_WHILE``). The door's ``create_unique`` inserts or
returns the holder with its row locked, in one statement; here the policy decides, in the same
transaction, what the duplicate does to the holder:

- reject / reject_pending: nothing (``existing``); throttle: nothing while the holder is younger
  than ``period`` (``throttled``), else the new job takes the key over;
- replace / debounce / keep_latest (holder pending): the holder takes the new arguments
  (``replaced``; debounce also moves its start: ``debounced``), and drops a request it stored
  while it ran before (a re-queued keep_latest job's: older than the new arguments);
- keep_latest (holder running): the request is stored for one follow-up (``follow_up_queued``);
- cancel_running (holder running): the holder's durable cancel, then the new job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from accounts.models import User
from taskhub.errors import Conflict

from ..models import Job, JobEvent, JobStatus, UniquePolicy
from ..unique import UniqueRule
from . import _state
from .cancelling import job_cancel
from .deduplicated import dedupe_counted
from .labels import user_label

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING
# A created job's outcome is None, or cancelled_running when it took the key from a running job.
CREATED_OUTCOMES = (None, "cancelled_running")
_TAKEN_OVER = object()


Admit = Callable[[int], None]


def write_unique(job: Job, line: JobEvent, rule: UniqueRule, *, by: User | None, admit: Admit | None = None) -> Job:
    """Write ``job`` (its ``unique_key`` set) inside the caller's transaction, or deduplicate it
    into the job holding its key as ``rule``'s policy says. The job that answers the request comes
    back with ``dedupe_outcome`` (None for a new job). ``admit``: the owner's quota, checked only
    when the job is written (``_state.create_unique``): a duplicate creates nothing."""
    _prepare(job, rule)
    return _answer(job, line, rule, _state.create_unique(job, line, admit=admit), by=by, admit=admit)


def write_unique_many(
    items: list[tuple[Job, JobEvent, UniqueRule]], *, by: User | None, admit: Admit | None = None
) -> list[Job]:
    """``write_unique`` for a bulk request's keyed jobs (one owner, distinct keys, in key order):
    written in one statement on PostgreSQL (``_state.create_unique_many``; ``admit`` once for the
    jobs written), each duplicate then decided as ``write_unique`` decides it."""
    for job, _, rule in items:
        _prepare(job, rule)
    holders = _state.create_unique_many([job for job, _, _ in items], [line for _, line, _ in items], admit=admit)
    return [
        _answer(job, line, rule, holder, by=by, admit=admit)
        for (job, line, rule), holder in zip(items, holders, strict=True)
    ]


def _prepare(job: Job, rule: UniqueRule) -> None:
    job.unique_policy, job.unique_held = rule.policy, True
    if rule.policy == UniquePolicy.DEBOUNCE:
        # A debounced job waits for ``period`` of quiet from its first request too.
        job.run_at = max(job.run_at or job.created_at, job.created_at + _span(rule.period))


def _answer(job: Job, line: JobEvent, rule: UniqueRule, holder, *, by: User | None, admit: Admit | None) -> Job:
    """The job answering ``job``'s create, given what its insert found (``holder``; None: written)."""
    outcome = None
    for _ in range(3):
        if holder is None:
            job.dedupe_outcome = outcome
            return job
        decided = _decide(holder, job, rule, by=by)
        if decided is not _TAKEN_OVER:
            survivor = Job.objects.get(id=holder["id"])
            survivor.dedupe_outcome = decided
            return survivor
        if holder["status"] == RUNNING and rule.policy == UniquePolicy.CANCEL_RUNNING:
            outcome = "cancelled_running"
            job.dedupe_counts = dedupe_counted(None, outcome)  # written with it (/metrics)
        holder = _state.create_unique(job, line, admit=admit)
    raise Conflict(f"unique.key: the key {job.unique_key!r} keeps changing hands; try again.", code="conflict")


def _decide(holder: dict[str, Any], job: Job, rule: UniqueRule, *, by: User | None):
    """What the duplicate ``job`` does to the locked ``holder``: its outcome, or ``_TAKEN_OVER``
    when the holder let the key go (the caller inserts again, in the same transaction)."""
    status, policy, now = holder["status"], rule.policy, job.created_at
    if policy == UniquePolicy.THROTTLE:
        if holder["unique_policy"] == UniquePolicy.THROTTLE and holder["created_at"] <= now - _span(rule.period):
            _state.release_unique(holder["id"], message=f"Key taken over by a new job after {rule.period:g} s.")
            return _TAKEN_OVER
        return _dedupe(holder, "throttled", by=by, now=now)
    if policy == UniquePolicy.CANCEL_RUNNING and status == RUNNING and holder["cancel_requested_at"] is None:
        job_cancel(job_id=holder["id"], by=by, reason=" by a newer job of its unique key (cancel_running)")
        return _TAKEN_OVER
    if status == PENDING and policy in (UniquePolicy.REPLACE, UniquePolicy.DEBOUNCE, UniquePolicy.KEEP_LATEST):
        changes = {"args": job.args, "kwargs": job.kwargs, "priority": job.priority, "queue": job.queue}
        # A keep_latest holder pending again (its worker died, or a retry) may still store a request
        # from its cut run: older than this one, which the holder now runs. It must not follow it.
        changes["unique_follow_up"] = None
        if policy == UniquePolicy.DEBOUNCE:
            start = now + _span(rule.period)
            if rule.max_wait is not None:
                start = min(start, holder["created_at"] + _span(rule.max_wait))
            changes["run_at"] = start
            # Its message goes again for the new start; the earlier ones arrive too early and are refused.
            return _dedupe(holder, "debounced", by=by, now=now, changes=changes, send=True)
        return _dedupe(holder, "replaced", by=by, now=now, changes=changes)
    if status == RUNNING and policy == UniquePolicy.KEEP_LATEST:
        request = {
            "args": job.args,
            "kwargs": job.kwargs,
            "priority": job.priority,
            "by": by.pk if by else None,
            "by_label": user_label(by),
            "at": now.isoformat(),
        }
        return _dedupe(holder, "follow_up_queued", by=by, now=now, changes={"unique_follow_up": request})
    return _dedupe(holder, "existing", by=by, now=now)


def _span(seconds: float | None) -> timedelta:
    return timedelta(seconds=seconds or 0)


def _dedupe(
    holder: dict[str, Any], outcome: str, *, by: User | None, now: datetime, changes=None, send: bool = False
) -> str:
    message = f"deduplicated: request by {user_label(by)} at {now:%Y-%m-%d %H:%M:%S} UTC ({outcome})."
    # Counted on the holder's locked row, by outcome (/metrics: services/deduplicated.py).
    changes = {**(changes or {}), "dedupe_counts": dedupe_counted(holder["dedupe_counts"], outcome)}
    _state.deduplicate(holder["id"], status=holder["status"], changes=changes, actor=by, message=message, send=send)
    return outcome
