"""The SQL of a generic transition (the door's ``_state`` and ``_steps``, through ``_sql``, which
re-exports these): the ORM's conditional UPDATE of jobs, compiled, with ``RETURNING`` and, on
PostgreSQL, its timeline INSERT in the same statement (``WITH changed AS (UPDATE …) INSERT …``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from django.db.models.expressions import DatabaseDefault, RawSQL
from django.db.models.sql import UpdateQuery

from ..models import Job, JobEvent

_JOB_TABLE = f'"{Job._meta.db_table}"'
_LOCKED_KEY = f'"{Job._meta.pk.column}"'


def line_value(field, value: Any, connection) -> Any:
    """A timeline line's column as a statement's parameter: None for a value left to the database
    (``JobEvent.at`` of a line given no time), which ``line_column`` turns into its default."""
    return None if isinstance(value, DatabaseDefault) else field.get_db_prep_save(value, connection)


def line_column(field, sql: str) -> str:
    """The SQL of a line's column given as ``sql`` (a parameter, an unnested array's column): for a
    column with a database default (``JobEvent.at``: ``Now()``, ``STATEMENT_TIMESTAMP()`` on
    PostgreSQL) that default where it is NULL. Here the INSERTs name every column, so DEFAULT does
    not apply by itself; the change's own statement gives the line the same time as its row."""
    return f"COALESCE({sql}, STATEMENT_TIMESTAMP())" if field.has_db_default() else sql


def can_return(alias: str) -> bool:
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


def update_returning(query: QuerySet[Job], changes: dict[str, Any], fields: Sequence[str]) -> dict[str, Any] | None:
    """``query.update(**changes)`` with ``RETURNING fields`` (``can_return``): the updated row's
    fields as a query would read them, None when no row matched. Django's update() returns only a count."""
    compiler, statement, params = _update_sql(query, changes)
    fields = list(fields)
    connection = connections[query.db]
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {', '.join(_columns(compiler, fields))}", params)
        row = cursor.fetchone()
    if row is None:
        return None
    return {name: from_db(name, value, connection) for name, value in zip(fields, row, strict=True)}


def from_db(name: str, value: Any, connection) -> Any:
    """A returned column through the converters a query applies (SQLite's times come back naive
    without them: a naive datetime, written back, is a RuntimeWarning with USE_TZ)."""
    field = Job._meta.get_field(name)
    column = field.get_col(Job._meta.db_table)
    for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = converter(value, column, connection)
    return value


def update_with_event(
    query: QuerySet[Job], changes: dict[str, Any], fields: Sequence[str], line: JobEvent
) -> dict[str, Any] | bool | None:
    """PostgreSQL: the conditional UPDATE and its timeline line in one statement. The line is
    inserted only when the UPDATE matched (it selects from the updated row). Returns the
    ``fields`` of the updated row (None when it matched nothing), or whether it matched."""
    connection, sql, params = _with_event(query, changes, fields, line)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if not fields:
        return row is not None
    return None if row is None else dict(zip(fields, row, strict=True))


def update_many_with_event(query: QuerySet[Job], changes: dict[str, Any], line: JobEvent) -> list:
    """``update_with_event`` for every row ``query`` matches (a copy of ``line`` on each timeline),
    one statement: the ids of the rows updated (a workflow's steps cancelled or retried together).

    The rows are locked in the order of their ids first (``locked``), as a step's success locks its
    children (``_sql._WORKFLOW_RELEASE``): an UPDATE of many rows locks them in whatever order its
    plan reads them, and two such changes over shared rows (a failure's cancel of its dependents and
    a sibling's release of the same children, or a workflow's cancel) deadlocked.

    A query that matches nothing by its very terms (``id__in=[]``: a failed step with no step below
    it) is no statement at all: Django refuses to compile it (``EmptyResultSet``).

    Not JIT compiled: the planner prices the lock's semi-join per row, so a change of 10,000 steps
    that the statistics know of (jobs_job analyzed after a big workflow was created, as autovacuum
    does once a table's rows are mostly new) passes ``jit_above_cost`` and the inlining and
    optimizing costs by far: compiling took 240 of the 525 ms of such a workflow's cancel (EXPLAIN
    ANALYZE); run, the statement reads each locked id once. ``SET LOCAL``: for this transaction only
    (every caller holds one: a cancel, a retry, a failure's cascade), as PgBouncer's transaction
    mode allows (docs/DEPLOYMENT.md)."""
    try:
        locking, lock_params = query.order_by("pk").values("pk").query.sql_with_params()
        ordered = query.filter(pk__in=RawSQL(f"SELECT {_LOCKED_KEY} FROM locked", ()))
        connection, sql, params = _with_event(ordered, changes, [], line, answer_ids=True)
    except EmptyResultSet:
        return []
    sql = f"WITH locked AS ({locking} FOR NO KEY UPDATE OF {_JOB_TABLE}), {sql.removeprefix('WITH ')}"
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, [*lock_params, *params])
        return [row[0] for row in cursor.fetchall()]


def _with_event(
    query: QuerySet[Job], changes: dict[str, Any], fields: Sequence[str], line: JobEvent, answer_ids: bool = False
):
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
            values.append(line_column(field, f"CAST(%s AS {field.cast_db_type(connection)})"))
            params.append(line_value(field, getattr(line, field.attname), connection))
    answer = ", ".join(f"changed.{column}" for column in _columns(compiler, fields)) or "1"
    if answer_ids:
        answer = f"changed.{key}"
    sql = (
        f"WITH changed AS ({statement} RETURNING {returned}), "
        f"line AS (INSERT INTO {quote(JobEvent._meta.db_table)} ({', '.join(names)}) "
        f"SELECT {', '.join(values)} FROM changed) "
        f"SELECT {answer} FROM changed"
    )
    return connection, sql, params
