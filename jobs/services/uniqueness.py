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

import copy
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
# A verdict letting the holder's key go before the new job is written (throttle; cancel_running).
_RELEASE, _CANCEL = "release", "cancel"


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
    """``write_unique`` for a bulk request's keyed jobs (one owner, in key order, the items of one
    key together in request order), in a fixed number of statements on PostgreSQL whatever the
    number of duplicates: the first item of each key written or its holder found and locked in one
    (``_state.create_unique_many``; ``admit`` once for the jobs written); the later items of a key
    are its duplicates. Each duplicate is decided against its holder's locked row, and each
    holder's duplicates are written together, the later item's changes winning (as one at a time),
    all holders in one statement (``_state.deduplicate_many``), their rows read back in one.
    A key whose holder must let it go first (a throttle's takeover, cancel_running's cancel: a
    cancel, a release, and an insert again) is decided one item at a time, as ``write_unique``:
    rare in a bulk, and each changes the holder the next item finds."""
    for job, _, rule in items:
        _prepare(job, rule)
    keys: dict[str, list[int]] = {}
    for index, (job, _, _) in enumerate(items):
        keys.setdefault(job.unique_key, []).append(index)
    firsts = [indexes[0] for indexes in keys.values()]
    found = _state.create_unique_many([items[i][0] for i in firsts], [items[i][1] for i in firsts], admit=admit)
    answers: list[Job | None] = [None] * len(items)
    batch: list[tuple[dict[str, Any], list[tuple[int, tuple[str, dict, bool]]]]] = []
    written_first: dict[Any, int] = {}  # a written job's id: its item, answered with the row its duplicates left
    for indexes, found_holder in zip(keys.values(), found, strict=True):
        holder, duplicates = found_holder, indexes
        if holder is None:  # written: the key's later items are its duplicates
            first = items[indexes[0]][0]
            first.dedupe_outcome, answers[indexes[0]], written_first[first.id] = None, first, indexes[0]
            holder, duplicates = _written_holder(first), indexes[1:]
        verdicts = [_verdict(holder, items[i][0], items[i][2], by=by) for i in duplicates]
        if any(verdict in (_RELEASE, _CANCEL) for verdict in verdicts):
            for i in duplicates:
                job, line, rule = items[i]
                if i == indexes[0]:
                    answers[i] = _answer(job, line, rule, found_holder, by=by, admit=admit)
                else:
                    answers[i] = write_unique(job, line, rule, by=by, admit=admit)
        elif duplicates:
            batch.append((holder, list(zip(duplicates, verdicts, strict=True))))
    survivors = _dedupe_many(batch, [job for job, _, _ in items], by=by)
    for holder, decided in batch:
        for index, (outcome, _, _) in decided:
            answers[index] = _answering(survivors[holder["id"]], outcome)
        if holder["id"] in written_first:
            answers[written_first[holder["id"]]] = _answering(survivors[holder["id"]], None)
    return answers


def _written_holder(job: Job) -> dict[str, Any]:
    """A job just written, as a holder found by a create (``HOLDER_FIELDS``)."""
    return {
        "id": job.id,
        "status": PENDING,
        "created_at": job.created_at,
        "run_at": job.run_at,
        "unique_policy": job.unique_policy,
        "cancel_requested_at": None,
        "dedupe_counts": job.dedupe_counts,
    }


def _answering(survivor: Job, outcome: str | None) -> Job:
    answer = copy.copy(survivor)
    answer.dedupe_outcome = outcome
    return answer


def _dedupe_many(batch, jobs: list[Job], *, by: User | None) -> dict[Any, Job]:
    """Each holder's duplicates of ``batch`` (decided, in request order) written at once: their
    count, their changes (the later's where two change one field), their counts by outcome and the
    last one's line. The holders as they are then, by id."""
    holders = []
    for holder, decided in batch:
        changes, counts, send = {}, holder["dedupe_counts"], False
        for _, (outcome, item_changes, item_send) in decided:
            changes.update(item_changes)
            counts, send = dedupe_counted(counts, outcome), send or item_send
        last, (outcome, _, _) = decided[-1]
        changes["dedupe_counts"] = counts
        message = _message(by, jobs[last].created_at, outcome)
        holders.append(_state.Deduplication(holder["id"], holder["status"], len(decided), changes, message, send))
    if not holders:
        return {}
    _state.deduplicate_many(holders, actor=by)
    return {job.id: job for job in Job.objects.filter(id__in=[holder.job_id for holder in holders])}


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
    """What the duplicate ``job`` does to the locked ``holder``, written: its outcome, or
    ``_TAKEN_OVER`` when the holder let the key go (the caller inserts again, in the same transaction)."""
    verdict = _verdict(holder, job, rule, by=by)
    if verdict == _RELEASE:
        _state.release_unique(holder["id"], message=f"Key taken over by a new job after {rule.period:g} s.")
        return _TAKEN_OVER
    if verdict == _CANCEL:
        job_cancel(job_id=holder["id"], by=by, reason=" by a newer job of its unique key (cancel_running)")
        return _TAKEN_OVER
    outcome, changes, send = verdict
    return _dedupe(holder, outcome, by=by, now=job.created_at, changes=changes, send=send)


def _verdict(holder: dict[str, Any], job: Job, rule: UniqueRule, *, by: User | None):
    """What the duplicate ``job`` does to ``holder``, nothing written: (outcome, the holder's changes,
    whether its message goes again), or ``_RELEASE`` / ``_CANCEL`` when the holder must let its key
    go first. A duplicate changes neither the holder's status nor what the next duplicate's verdict
    reads of it: a bulk request's duplicates of one holder are decided against one reading."""
    status, policy, now = holder["status"], rule.policy, job.created_at
    if policy == UniquePolicy.THROTTLE:
        if holder["unique_policy"] == UniquePolicy.THROTTLE and holder["created_at"] <= now - _span(rule.period):
            return _RELEASE
        return "throttled", {}, False
    if policy == UniquePolicy.CANCEL_RUNNING and status == RUNNING and holder["cancel_requested_at"] is None:
        return _CANCEL
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
            return "debounced", changes, True
        return "replaced", changes, False
    if status == RUNNING and policy == UniquePolicy.KEEP_LATEST:
        request = {
            "args": job.args,
            "kwargs": job.kwargs,
            "priority": job.priority,
            "by": by.pk if by else None,
            "by_label": user_label(by),
            "at": now.isoformat(),
        }
        return "follow_up_queued", {"unique_follow_up": request}, False
    return "existing", {}, False


def _span(seconds: float | None) -> timedelta:
    return timedelta(seconds=seconds or 0)


def _dedupe(
    holder: dict[str, Any], outcome: str, *, by: User | None, now: datetime, changes=None, send: bool = False
) -> str:
    # Counted on the holder's locked row, by outcome (/metrics: services/deduplicated.py).
    changes = {**(changes or {}), "dedupe_counts": dedupe_counted(holder["dedupe_counts"], outcome)}
    message = _message(by, now, outcome)
    _state.deduplicate(holder["id"], status=holder["status"], changes=changes, actor=by, message=message, send=send)
    return outcome


def _message(by: User | None, now: datetime, outcome: str) -> str:
    return f"deduplicated: request by {user_label(by)} at {now:%Y-%m-%d %H:%M:%S} UTC ({outcome})."
