"""The one way a job changes state: a conditional UPDATE plus its timeline line, atomically.

Each change names the statuses it may start from; when it matches no row the change was illegal
or lost a race, and the caller turns that into a Conflict. Changes made for a running attempt are
fenced on ``attempts`` too, so a worker that lost its job can never write over the next attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from accounts.models import User
from taskhub.errors import ApplicationError, Conflict, NotFound

from ..live import job_changed
from ..models import Job, JobEvent, JobEventKind, JobStatus
from . import _hot_path
from .dispatch import job_dispatch

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


def user_label(user: User | None) -> str:
    return f"user {user.get_username()}" if user else "system"


def worker_label(worker: str) -> str:
    return f"worker {worker}" if worker else "system"


def attempt_label(attempts: int) -> str:
    """The attempt a row with this ``attempts`` value runs, counted from 1 (as everywhere people read it)."""
    return f"attempt {attempts + 1}"


def event(
    job_id,
    kind: str,
    *,
    from_status: str = "",
    to_status: str = "",
    actor: User | None = None,
    actor_label: str = "",
    message: str = "",
    data: dict | None = None,
    at: datetime | None = None,
) -> JobEvent:
    """An unsaved timeline line."""
    return JobEvent(
        job_id=job_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_label=actor_label or user_label(actor),
        message=message,
        data=data or {},
        at=at or timezone.now(),
    )


def transition(
    job_id,
    *,
    sources: Sequence[str],
    changes: dict[str, Any],
    event: JobEvent | None,
    where: Q | None = None,
    send: bool = False,
    returning: Sequence[str] = (),
) -> bool | dict[str, Any]:
    """One conditional UPDATE plus its timeline line, atomically. True when the row matched.

    ``send``: the job went (back) to pending; publish its message once the transaction commits.
    ``returning``: fields of the updated row to return instead of True (read by the UPDATE itself,
    no second query).

    On PostgreSQL the UPDATE and the timeline INSERT are one statement (``WITH changed AS (UPDATE …
    RETURNING …) INSERT … SELECT … FROM changed``): atomic by itself, one round trip, no
    BEGIN/COMMIT of its own (inside a caller's transaction it is part of that). Elsewhere (SQLite,
    the embedded default) the two statements run in a transaction.
    """
    query = Job.objects.filter(id=job_id, status__in=list(sources))
    if where is not None:
        query = query.filter(where)
    if event is not None and _can_return(query.db) and _hot_path.available(query.db):
        matched = _update_with_event(query, changes, returning, event)
        _after(job_id, matched, send)
        return matched if returning else bool(matched)
    with transaction.atomic():
        matched = _update_returning(query, changes, returning) if returning else query.update(**changes)
        if matched and event is not None:
            event.save()
        _after(job_id, matched, send)
    return matched if returning else bool(matched)


def _after(job_id, matched, send: bool) -> None:
    """What follows a change that matched: the live publish and, for a job back to pending, its
    message, both once the transaction commits (at once when there is none)."""
    if matched:
        job_changed(job_id)
    if matched and send:
        transaction.on_commit(lambda: job_dispatch(jobs=Job.objects.filter(id=job_id, status=PENDING)))


def _can_return(alias: str) -> bool:
    """UPDATE … RETURNING: PostgreSQL, SQLite from 3.35 (which brought it with INSERT … RETURNING)."""
    return connections[alias].features.can_return_columns_from_insert


def _update_sql(query: QuerySet[Job], changes: dict[str, Any]) -> tuple[Any, str, list]:
    """The compiler and SQL of ``query.update(**changes)``, as Django would run it."""
    update = query.query.chain(UpdateQuery)
    update.add_update_values(changes)
    compiler = update.get_compiler(query.db)
    compiler.pre_sql_setup()
    statement, params = compiler.as_sql()
    return compiler, statement, list(params)


def _columns(compiler, fields: Sequence[str]) -> list[str]:
    return [compiler.quote_name_unless_alias(Job._meta.get_field(name).column) for name in fields]


def _update_returning(query: QuerySet[Job], changes: dict[str, Any], fields: Sequence[str]) -> dict[str, Any] | None:
    """``query.update(**changes)`` with ``RETURNING fields`` (PostgreSQL, SQLite >= 3.35): the updated
    row's fields as the database returns them (meant for plain columns such as ``attempts``), None
    when no row matched. Django's update() returns only a count."""
    if not _can_return(query.db):
        # Inside transition()'s transaction: SQLite's write lock (IMMEDIATE) keeps the row as updated.
        matched = list(query.values_list("pk", flat=True))
        query.update(**changes)
        return Job.objects.filter(pk__in=matched).values(*fields).first()
    compiler, statement, params = _update_sql(query, changes)
    fields = list(fields)
    with connections[query.db].cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {', '.join(_columns(compiler, fields))}", params)
        row = cursor.fetchone()
    return None if row is None else dict(zip(fields, row, strict=True))


def _update_with_event(
    query: QuerySet[Job], changes: dict[str, Any], fields: Sequence[str], line: JobEvent
) -> dict[str, Any] | bool:
    """PostgreSQL: the conditional UPDATE and its timeline line in one statement. The line is
    inserted only when the UPDATE matched (it selects from the updated row). Returns the
    ``fields`` of the updated row (None when it matched nothing), or whether it matched."""
    connection = connections[query.db]
    compiler, statement, params = _update_sql(query, changes)
    fields = list(fields)
    key = compiler.quote_name_unless_alias(Job._meta.pk.column)
    returned = ", ".join([key, *_columns(compiler, fields)])
    quote = connection.ops.quote_name
    names, values = [], []
    for field in JobEvent._meta.local_concrete_fields:
        if field.primary_key:
            continue
        names.append(quote(field.column))
        if field.attname == "job_id":
            values.append(f"changed.{key}")
        else:
            # Typed: in INSERT … SELECT an untyped parameter (a NULL, a string) would be taken as text.
            values.append(f"CAST(%s AS {field.cast_db_type(connection)})")
            params.append(field.get_db_prep_save(getattr(line, field.attname), connection))
    answer = ", ".join(f"changed.{column}" for column in _columns(compiler, fields)) or "1"
    sql = (
        f"WITH changed AS ({statement} RETURNING {returned}), "
        f"line AS (INSERT INTO {quote(JobEvent._meta.db_table)} ({', '.join(names)}) "
        f"SELECT {', '.join(values)} FROM changed) "
        f"SELECT {answer} FROM changed"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if not fields:
        return row is not None
    return None if row is None else dict(zip(fields, row, strict=True))


def finish_running(
    job_id,
    *,
    status: str,
    fence: Q,
    actor_label: str,
    message: str = "",
    data: dict | None = None,
    **changes: Any,
) -> bool:
    """running -> succeeded / failed / revoked for the attempt ``fence`` names. True when it matched."""
    now = timezone.now()
    return transition(
        job_id,
        sources=[RUNNING],
        where=fence,
        changes={"status": status, "finished_at": now, "heartbeat_at": now, **changes},
        event=event(
            job_id,
            JobEventKind(status),
            from_status=RUNNING,
            to_status=status,
            actor_label=actor_label,
            at=now,
            message=message,
            data=data,
        ),
    )


def requeue_running(
    job_id,
    *,
    attempts: int,
    fence: Q,
    kind: str,
    actor_label: str,
    message: str,
    run_at: datetime | None = None,
    data: dict | None = None,
    **changes: Any,
) -> bool:
    """running -> pending as the next attempt (``attempts`` + 1), sent again after commit.

    The next attempt starts from nothing: its progress and message are the new run's to report.
    """
    return transition(
        job_id,
        sources=[RUNNING],
        where=fence,
        send=True,
        changes={
            "status": PENDING,
            "attempts": attempts + 1,
            "run_at": run_at,
            "dispatched_at": None,
            "heartbeat_at": None,
            "progress": 0,
            "progress_meta": {},
            **changes,
        },
        event=event(
            job_id,
            kind,
            from_status=RUNNING,
            to_status=PENDING,
            actor_label=actor_label,
            message=message,
            data=data,
        ),
    )


def conflict(job_id, action: str) -> ApplicationError:
    """The error for a transition that matched no row: NotFound, or Conflict naming the status."""
    status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if status is None:
        return NotFound(f"Job {job_id} does not exist.")
    return Conflict(f"Cannot {action} job {job_id}: it is {status}.", code="invalid_state")
