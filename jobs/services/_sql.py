"""The job statements written once as SQL (PostgreSQL), and the SQL of a generic transition.

Only the door (``_state``) uses this module: it decides, once per change, whether a statement
here runs or the ORM does (SQLite, the embedded default), and adds the publish and the re-send.

A job is created (its row, one statement; its ``created`` line too when the row cannot derive it,
``jobs.timeline``); a run starts (pending -> running), reports progress, and succeeds (running ->
succeeded): their timeline lines are derived from the row, never inserted (issue 20). Through
the ORM each of these built and compiled a query at every call: in a profile of
the worker running no-op jobs, building the filters and compiling them were a third of the pool
processes' CPU, more than PostgreSQL took to run the statements. Here they are plain SQL with
parameters, built from the models' table and column names at import. Any other change is
``update_with_event``: the ORM's conditional UPDATE, compiled, with its timeline INSERT in the
same statement.

They do exactly what ``Model.save()`` / the ORM path of ``_state`` do for these cases (same
conditions, same columns, same clocks, same event): ``jobs/tests/services/test_hot_path.py``
runs both on the same jobs and compares the rows.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, connections, transaction

from accounts.models import User

from ..models import (
    Job,
    JobEvent,
    JobStatus,
    UniquePolicy,
    Workflow,
    WorkflowDependency,
    WorkflowStatus,
    unique_policies_holding,
)
from ._bound import cursor as _cursor
from ._quotas import share_lock
from ._sql_updates import can_return as can_return  # re-exported: the door's one SQL module
from ._sql_updates import from_db as from_db
from ._sql_updates import line_column, line_value
from ._sql_updates import update_many_with_event as update_many_with_event
from ._sql_updates import update_returning as update_returning
from ._sql_updates import update_with_event as update_with_event
from .gates import queue_not_paused

JOB, EVENT, USER = Job._meta.db_table, JobEvent._meta.db_table, User._meta.db_table
STARTED_FIELDS = (
    "attempts",
    "queue",
    "celery_task_name",
    "owner_id",
    "started_at",
    "heartbeat_at",
    "unique_key",
    "concurrency_key",
    "concurrency_limit",
)
# What the start reads of the job's owner for the fair share (``_quotas.check_running_share``), in
# the start's own statement, which also takes the owner's share lock (``_quotas.share_lock``, an
# advisory lock) for its transaction.
OWNER_FIELDS = ("is_staff", "max_running_jobs")


def _held_in(status: str) -> str:
    """SQL of ``unique_held`` after a move to ``status`` (``_state._releasing``, written once here)."""
    keeping = ", ".join(f"'{policy}'" for policy in unique_policies_holding(status))
    return f'"unique_held" = ("{JOB}"."unique_held" AND "{JOB}"."unique_policy" IN ({keeping}))'


# A debounced job starts at its run_at, never early: its start was moved later, and the messages
# sent for the earlier times arrive before it (the last one sent is on time). The status it starts
# from is a parameter: written as a constant, it let a prepared start's generic plan read the pending
# jobs' index (job_pending) whole, by its condition, instead of finding the row by its primary key
# (test_hot_path: planned on a nearly empty table, it then scanned the whole backlog at every start).
# --- workflows: a step starts only once its parents have succeeded (parents_remaining 0), and its workflow is
# running from its first start; a step's success decrements its children's parents_remaining, in the same statement
# (so exactly once per parent: the success is fenced on attempts), and counts in its workflow; the children at 0 are
# returned, for the door to send after commit. Locks: job rows first, then the workflow's row (as _steps does).
# The workflow's end is the clock once its row is locked, not the statement's start: a success whose
# statement began first may count last (it waited on a lock), after a later step's end committed.
FLOW, DEP = Workflow._meta.db_table, WorkflowDependency._meta.db_table
_WORKFLOW_STARTED = f"""flow AS (
    UPDATE "{FLOW}" SET "status" = '{WorkflowStatus.RUNNING}'
    WHERE "id" = (SELECT "workflow_id" FROM changed) AND "status" = '{WorkflowStatus.PENDING}'
)"""
# The children are locked in the order of their ids (``locked``, then updated), as every change of
# many steps locks them (``_sql_updates.update_many_with_event``): parents sharing children, or a
# failure's cancel of its dependents racing a sibling's success, never wait for each other in a cycle.
_WORKFLOW_RELEASE = f"""locked AS (
    SELECT child."id" FROM "{JOB}" AS child JOIN "{DEP}" AS dep ON child."id" = dep."child_id"
        JOIN changed ON dep."parent_id" = changed."id"
    WHERE changed."workflow_id" IS NOT NULL
    ORDER BY child."id" FOR NO KEY UPDATE OF child
), released AS (
    UPDATE "{JOB}" AS child SET "parents_remaining" = child."parents_remaining" - 1
    FROM locked WHERE child."id" = locked."id"
    RETURNING child."id", child."parents_remaining"
), flow AS (
    UPDATE "{FLOW}" AS flow SET "steps_succeeded" = flow."steps_succeeded" + 1,
        "status" = CASE WHEN flow."steps_succeeded" + 1 >= flow."steps_total"
            AND flow."status" IN ('{WorkflowStatus.PENDING}', '{WorkflowStatus.RUNNING}')
            THEN '{WorkflowStatus.SUCCEEDED}' ELSE flow."status" END,
        "finished_at" = CASE WHEN flow."steps_succeeded" + 1 >= flow."steps_total"
            AND flow."status" IN ('{WorkflowStatus.PENDING}', '{WorkflowStatus.RUNNING}')
            THEN CLOCK_TIMESTAMP() ELSE flow."finished_at" END
    FROM changed WHERE flow."id" = changed."workflow_id" AND (SELECT count(*) FROM released) >= 0
)"""
# --- end workflows ---

_START = f"""
WITH changed AS (
    UPDATE "{JOB}" SET "status" = '{JobStatus.RUNNING}', "started_at" = STATEMENT_TIMESTAMP(),
        "heartbeat_at" = STATEMENT_TIMESTAMP(), "worker" = %(worker)s, "finished_at" = NULL,
        "concurrency_waiting_since" = NULL, {_held_in(JobStatus.RUNNING)}
    WHERE "{JOB}"."id" = %(id)s AND "{JOB}"."status" = %(pending)s
        AND ("{JOB}"."run_at" IS NULL OR "{JOB}"."run_at" <= STATEMENT_TIMESTAMP()
            + CASE WHEN "{JOB}"."unique_policy" = '{UniquePolicy.DEBOUNCE}' THEN INTERVAL '0' ELSE %(early)s END)
        AND ("{JOB}"."expires_at" IS NULL OR "{JOB}"."expires_at" > STATEMENT_TIMESTAMP())
        {{fence}}
        AND {queue_not_paused().sql} AND "{JOB}"."parents_remaining" = 0
    RETURNING "{JOB}"."id", "{JOB}"."workflow_id", {", ".join(f'"{JOB}"."{name}"' for name in STARTED_FIELDS)}
), {_WORKFLOW_STARTED},
owner AS (
    SELECT "is_staff", "max_running_jobs", {share_lock('"id"')} FROM "{USER}"
    WHERE "id" = (SELECT "owner_id" FROM changed)
)
SELECT {", ".join(f"changed.{name}" for name in STARTED_FIELDS)}, {", ".join(f"owner.{c}" for c in OWNER_FIELDS)}
FROM changed, owner
"""
_START_ANY_ATTEMPT = _START.replace("{fence}", "")
_START_ATTEMPT = _START.replace("{fence}", f'AND "{JOB}"."attempts" = %(attempts)s')

_SUCCEED = f"""
WITH changed AS (
    UPDATE "{JOB}" SET "status" = '{JobStatus.SUCCEEDED}', "finished_at" = STATEMENT_TIMESTAMP(),
        "heartbeat_at" = STATEMENT_TIMESTAMP(),
        "progress" = 100, "progress_meta" = COALESCE(%(meta)s, "progress_meta"), "result" = %(result)s,
        "error" = '', "error_type" = '', "traceback" = '', {_held_in(JobStatus.SUCCEEDED)}
    WHERE "{JOB}"."id" = %(id)s AND "{JOB}"."status" = '{JobStatus.RUNNING}' AND "{JOB}"."attempts" = %(attempts)s
        AND "{JOB}"."unique_follow_up" IS NULL
    RETURNING "{JOB}"."id", "{JOB}"."workflow_id", "{JOB}"."concurrency_key"
), {_WORKFLOW_RELEASE}
SELECT changed.concurrency_key, (SELECT array_agg(released.id) FROM released WHERE released.parents_remaining = 0)
FROM changed
"""

_STAMP_STARTED = f"""
UPDATE "{JOB}" SET "started_at" = STATEMENT_TIMESTAMP() WHERE "{JOB}"."id" = %(id)s RETURNING "started_at"
"""

_PROGRESS = f"""
UPDATE "{JOB}" SET "progress" = %(progress)s, "progress_meta" = %(meta)s, "heartbeat_at" = STATEMENT_TIMESTAMP()
WHERE "{JOB}"."id" = %(id)s AND "{JOB}"."status" = '{JobStatus.RUNNING}'
    AND "{JOB}"."cancel_requested_at" IS NULL AND "{JOB}"."attempts" = %(attempts)s
"""


_JOB_FIELDS = Job._meta.concrete_fields
_EVENT_FIELDS = [field for field in JobEvent._meta.concrete_fields if not field.primary_key]
_INSERT_JOB = f"""
INSERT INTO "{JOB}" ({", ".join(f'"{field.column}"' for field in _JOB_FIELDS)})
VALUES ({", ".join(["%s"] * len(_JOB_FIELDS))})
"""
_INSERT = f"""
WITH job AS ({_INSERT_JOB})
INSERT INTO "{EVENT}" ({", ".join(f'"{field.column}"' for field in _EVENT_FIELDS)})
VALUES ({", ".join(line_column(field, "%s") for field in _EVENT_FIELDS)})
"""


def insert(job: Job, line: JobEvent | None) -> None:
    """Write a new ``job`` and its first timeline ``line`` (None: its row derives it, ``jobs.timeline``)
    in one statement, as ``save()`` of each would (every column from the instances, prepared by
    their fields); ``job`` becomes a saved instance (the line's id is the database's; nobody reads
    it). The line's foreign key is checked at the end of the statement, when the job's row is there."""
    connection = connections["default"]
    params = [field.get_db_prep_save(field.pre_save(job, True), connection) for field in _JOB_FIELDS]
    if line is not None:
        params += [line_value(field, field.pre_save(line, True), connection) for field in _EVENT_FIELDS]
    with _cursor() as cursor:
        cursor.execute(_INSERT_JOB if line is None else _INSERT, params)
    job._state.adding, job._state.db = False, connection.alias


# What a keyed create learns of the job that holds its key.
HOLDER_FIELDS = ("id", "status", "created_at", "run_at", "unique_policy", "cancel_requested_at", "dedupe_counts")
_CONFLICT = f"""
WITH job AS (
    INSERT INTO "{JOB}" AS held ({", ".join(f'"{field.column}"' for field in _JOB_FIELDS)})
    VALUES ({", ".join(["%s"] * len(_JOB_FIELDS))})
    ON CONFLICT ("owner_id", "unique_key") WHERE "unique_key" IS NOT NULL AND "unique_held"
    DO UPDATE SET "unique_held" = held."unique_held"
    RETURNING (held.xmax = 0) AS inserted, {", ".join(f'held."{name}"' for name in HOLDER_FIELDS)}
){{line}}
SELECT * FROM job
"""
_CONFLICT_LINE = f""", line AS (
    INSERT INTO "{EVENT}" ({", ".join(f'"{field.column}"' for field in _EVENT_FIELDS)})
    SELECT {", ".join(line_column(field, f"CAST(%s AS {{{field.attname}}})") for field in _EVENT_FIELDS)}
    FROM job WHERE job.inserted
)"""


def insert_unique(job: Job, line: JobEvent | None) -> dict[str, Any] | None:
    """``insert`` (``line`` None: derived) for a job with a unique key: written, and None, unless
    another job of its owner holds the key; then nothing is written and the holder's
    ``HOLDER_FIELDS`` come back, its row locked (``DO UPDATE`` of nothing) until the transaction
    ends. One statement: concurrent creates of one key queue on the index entry, never both insert."""
    connection = connections["default"]
    params = [field.get_db_prep_save(field.pre_save(job, True), connection) for field in _JOB_FIELDS]
    statement = _CONFLICT.format(line="")
    if line is not None:
        params += [line_value(field, field.pre_save(line, True), connection) for field in _EVENT_FIELDS]
        types = {field.attname: field.cast_db_type(connection) for field in _EVENT_FIELDS}
        statement = _CONFLICT.format(line=_CONFLICT_LINE.format(**types))
    with _cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row[0]:
        job._state.adding, job._state.db = False, connection.alias
        return None
    return {name: from_db(name, value, connection) for name, value in zip(HOLDER_FIELDS, row[1:], strict=True)}


def creator_lock() -> int:
    """Take a fresh advisory lock for the rest of the transaction that creates jobs and return its
    key, which their messages carry (``dispatch.job_dispatch_in_transaction``)."""
    key = secrets.randbits(63)
    with _cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    return key


def wait_for_creator(key: int, *, timeout: float) -> bool:
    """Wait (at most ``timeout`` seconds) until the transaction holding the advisory lock ``key``
    has ended, committed or rolled back. Whether it has."""
    try:
        with transaction.atomic(), _cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(timeout * 1000)}ms'")
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [key])
    except OperationalError:
        return False
    return True


def outermost_transaction() -> bool:
    """Whether the caller's transaction is the outermost atomic block: its commit follows its end."""
    connection = connections["default"]
    return connection.in_atomic_block and len(connection.atomic_blocks) == 1


def available(alias: str = "default") -> bool:
    """Whether these statements can run on the database (data-modifying WITH: PostgreSQL)."""
    return connections[alias].vendor == "postgresql"


def _json(name: str, value: Any, connection) -> Any:
    return Job._meta.get_field(name).get_db_prep_save(value, connection)


def start(job_id, *, worker: str, attempts: int | None, early: timedelta):
    """pending -> running when due and not expired, of ``attempts`` (any when None) and its queue not
    paused (its ``started`` line derived from the row: ``jobs.timeline``); the owner's share lock
    (``_quotas.share_lock``) held for the transaction. The row's ``STARTED_FIELDS``
    and ``owner`` (its ``OWNER_FIELDS``), or None when it matched nothing."""
    params = {"id": job_id, "worker": worker, "early": early, "pending": JobStatus.PENDING.value}
    if attempts is not None:
        params["attempts"] = attempts
    with _cursor() as cursor:
        cursor.execute(_START_ANY_ATTEMPT if attempts is None else _START_ATTEMPT, params)
        row = cursor.fetchone()
    if row is None:
        return None
    started = dict(zip(STARTED_FIELDS, row[: len(STARTED_FIELDS)], strict=True))
    started["owner"] = dict(zip(OWNER_FIELDS, row[len(STARTED_FIELDS) :], strict=True))
    return started


def succeed(job_id, *, attempts: int, result: Any, progress_meta: dict | None = None) -> dict[str, Any] | None:
    """running -> succeeded for ``attempts``, progress 100 (and ``progress_meta`` when given; its
    ``succeeded`` line derived from the row: ``jobs.timeline``), stamped with the database's clock
    (its workflow's end too); a workflow
    step's children released (``_WORKFLOW_RELEASE``). None when it matched nothing (a job holding a
    keep_latest request included: the door finishes it in one transaction with its follow-up), else
    the row's ``concurrency_key`` (the door frees it) and ``released``: the ids of the children whose
    last parent this was."""
    connection = connections["default"]
    params = {
        "id": job_id,
        "attempts": attempts,
        "result": _json("result", result, connection),
        "meta": None if progress_meta is None else _json("progress_meta", progress_meta, connection),
    }
    with _cursor() as cursor:
        cursor.execute(_SUCCEED, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return {"concurrency_key": row[0], "released": list(row[1] or [])}


def stamp_started(job_id) -> datetime | None:
    """The started job's ``started_at`` set to now (the database's clock); the new value."""
    with _cursor() as cursor:
        cursor.execute(_STAMP_STARTED, {"id": job_id})
        row = cursor.fetchone()
    return None if row is None else row[0]


def progress(job_id, *, attempts: int, progress: int, meta: dict) -> bool:
    """Progress of the running, not cancelled ``attempts``; stamps the heartbeat. Whether it matched."""
    connection = connections["default"]
    params = {
        "id": job_id,
        "attempts": attempts,
        "progress": progress,
        "meta": _json("progress_meta", meta, connection),
    }
    with _cursor() as cursor:
        cursor.execute(_PROGRESS, params)
        return cursor.rowcount == 1


def descendants(job_ids: list) -> list:
    """Every workflow step depending on one of ``job_ids``, directly or not (a recursive CTE)."""
    sql = f"""
    WITH RECURSIVE below(id) AS (
        SELECT "child_id" FROM "{DEP}" WHERE "parent_id" = ANY(%s)
        UNION SELECT dep."child_id" FROM "{DEP}" AS dep JOIN below ON dep."parent_id" = below.id
    ) SELECT id FROM below"""
    with _cursor() as cursor:
        cursor.execute(sql, [list(job_ids)])
        return [row[0] for row in cursor.fetchall()]
