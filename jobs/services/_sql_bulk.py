"""A bulk request's jobs in one statement each way (PostgreSQL; only the door, ``_state``, uses it).

``insert_many`` writes many jobs without unique keys: one ``INSERT … SELECT … FROM unnest(…)``.

``insert_unique_many`` is ``_sql.insert_unique`` for many jobs of one owner with distinct keys:
one ``INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE … RETURNING``, each column one
array parameter, with the ``created`` lines of the rows it inserted in the same statement. Rows
go in key order (the caller's), so overlapping bulk requests take their keys in one order. The
caller has folded same-key items into one first: PostgreSQL refuses to affect a row twice in one
statement.

``deduplicate_many`` writes what the duplicates of one request did to the holders it found
(locked by that insert): each holder's count, its policy's changes and its one "deduplicated"
line (updated in place, inserted when it has none), one ``UPDATE … FROM unnest(…)`` for them all.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connections

from ..models import Job, JobEvent, JobEventKind
from ._sql import _JOB_FIELDS, EVENT, HOLDER_FIELDS, JOB, _cursor, from_db
from ._sql_updates import line_column, line_value

_EVENT_FIELDS = [field for field in JobEvent._meta.concrete_fields if not field.primary_key]


@functools.cache
def _job_input() -> tuple[str, str, str]:
    """Many jobs as arrays, in SQL: their columns, one array parameter each (cast to the column's
    type), and the names ``unnest`` gives the arrays' elements (``_job_arrays`` are the parameters)."""
    connection = connections["default"]
    return (
        ", ".join(f'"{field.column}"' for field in _JOB_FIELDS),
        ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in _JOB_FIELDS),
        ", ".join(f"c{index}" for index in range(len(_JOB_FIELDS))),
    )


def _job_arrays(jobs: list[Job], connection) -> list[list]:
    """The parameters of ``_job_input``: each column of ``jobs``, as ``save()`` would prepare it."""
    return [[field.get_db_prep_save(field.pre_save(job, True), connection) for job in jobs] for field in _JOB_FIELDS]


@functools.cache
def _statement() -> str:
    connection = connections["default"]
    job_columns, job_arrays, names = _job_input()
    line_columns = ", ".join(f'"{field.column}"' for field in _EVENT_FIELDS)
    line_arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in _EVENT_FIELDS)
    line_names = ", ".join(f"e{index}" for index in range(len(_EVENT_FIELDS)))
    line_values = ", ".join(line_column(field, f"e{index}") for index, field in enumerate(_EVENT_FIELDS))
    job_id = f"e{[field.attname for field in _EVENT_FIELDS].index('job_id')}"
    return f"""
WITH input AS (
    SELECT * FROM unnest({job_arrays}) WITH ORDINALITY AS input({names}, n)
), job AS (
    INSERT INTO "{JOB}" AS held ({job_columns}) SELECT {names} FROM input ORDER BY n
    ON CONFLICT ("owner_id", "unique_key") WHERE "unique_key" IS NOT NULL AND "unique_held"
    DO UPDATE SET "unique_held" = held."unique_held"
    RETURNING (held.xmax = 0) AS inserted, held."unique_key", {", ".join(f'held."{name}"' for name in HOLDER_FIELDS)}
), line AS (
    INSERT INTO "{EVENT}" ({line_columns})
    SELECT {line_values} FROM unnest({line_arrays}) AS lines({line_names})
    JOIN job ON job.inserted AND job.id = lines.{job_id}
)
SELECT * FROM job
"""


@functools.cache
def _insert_statement() -> str:
    job_columns, job_arrays, names = _job_input()
    return f"""
INSERT INTO "{JOB}" ({job_columns})
SELECT {names} FROM unnest({job_arrays}) WITH ORDINALITY AS input({names}, n) ORDER BY n
"""


def insert_many(jobs: list[Job]) -> None:
    """Write ``jobs`` (without unique keys) in one statement, in their order: each column one array
    parameter, bound on the server (``_bound``), so the statement's text is the same for any number of
    jobs and is prepared after its 5th run. Django's ``bulk_create`` wrote one placeholder a value (45
    a job) and quoted each value into the SQL in Python. The jobs become saved instances."""
    connection = connections["default"]
    with _cursor() as cursor:
        cursor.execute(_insert_statement(), _job_arrays(jobs, connection))
    for job in jobs:
        job._state.adding, job._state.db = False, connection.alias


def insert_unique_many(jobs: list[Job], lines: list[JobEvent]) -> list[dict[str, Any] | None]:
    """Write each of ``jobs`` (one owner, distinct keys) and its ``created`` line in ``lines`` (those
    its row derives are left out of them: ``jobs.timeline``; a line joins its job by id), unless a job
    holds its key: then nothing is written for it and the holder's ``HOLDER_FIELDS`` come back in
    its place, its row locked until the transaction ends (None: written). One statement."""
    connection = connections["default"]
    params = _job_arrays(jobs, connection)
    params += [[line_value(field, field.pre_save(line, True), connection) for line in lines] for field in _EVENT_FIELDS]
    with _cursor() as cursor:
        cursor.execute(_statement(), params)
        rows = {row[1]: row for row in cursor.fetchall()}
    answers: list[dict[str, Any] | None] = []
    for job in jobs:
        row = rows[job.unique_key]
        if row[0]:
            job._state.adding, job._state.db = False, connection.alias
            answers.append(None)
        else:
            holder = zip(HOLDER_FIELDS, row[2:], strict=True)
            answers.append({name: from_db(name, value, connection) for name, value in holder})
    return answers


# The columns a duplicate may change on its holder (``uniqueness``), besides its count.
DEDUPE_FIELDS = ("args", "kwargs", "priority", "queue", "run_at", "unique_follow_up")


@functools.cache
def _dedupe_statement() -> str:
    connection = connections["default"]
    cast = {name: Job._meta.get_field(name).cast_db_type(connection) for name in ("id", "status", *DEDUPE_FIELDS)}
    arrays = ", ".join(
        [f"%s::{cast['id']}[]", f"%s::{cast['status']}[]", "%s::integer[]", "%s::jsonb[]"]
        + [f"%s::boolean[], %s::{cast[name]}[]" for name in DEDUPE_FIELDS]
    )
    names = ", ".join(["id", "status", "n", "counts"] + [f"set{i}, value{i}" for i in range(len(DEDUPE_FIELDS))])
    column = {name: Job._meta.get_field(name).column for name in DEDUPE_FIELDS}
    changes = ", ".join(
        f'"{column[name]}" = CASE WHEN input.set{i} THEN input.value{i} ELSE held."{column[name]}" END'
        for i, name in enumerate(DEDUPE_FIELDS)
    )
    line_columns = ", ".join(f'"{field.column}"' for field in _EVENT_FIELDS)
    line_arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in _EVENT_FIELDS)
    line_names = ", ".join(f"e{index}" for index in range(len(_EVENT_FIELDS)))
    line_values = ", ".join(f"{line_column(field, f'e{i}')} AS e{i}" for i, field in enumerate(_EVENT_FIELDS))
    line = {field.attname: f"e{index}" for index, field in enumerate(_EVENT_FIELDS)}
    kept = ", ".join(
        f'"{JobEvent._meta.get_field(name).column}" = lines.{line[name]}'
        for name in ("at", "actor_id", "actor_label", "message")
    )
    return f"""
WITH input AS (
    SELECT * FROM unnest({arrays}) AS input({names})
), job AS (
    UPDATE "{JOB}" AS held SET "duplicates" = held."duplicates" + input.n, "dedupe_counts" = input.counts, {changes}
    FROM input WHERE held."id" = input.id AND held."status" = input.status
    RETURNING held."id"
), lines AS (
    SELECT {line_values} FROM unnest({line_arrays}) AS lines({line_names}) JOIN job ON job.id = lines.{line["job_id"]}
), kept AS (
    UPDATE "{EVENT}" AS line SET {kept} FROM lines
    WHERE line."job_id" = lines.{line["job_id"]} AND line."kind" = '{JobEventKind.DEDUPLICATED}'
    RETURNING line."job_id"
), added AS (
    INSERT INTO "{EVENT}" ({line_columns})
    SELECT {line_names} FROM lines WHERE lines.{line["job_id"]} NOT IN (SELECT job_id FROM kept)
)
SELECT id FROM job
"""


def deduplicate_many(rows: list[tuple[Any, str, int, dict[str, Any]]], lines: list[JobEvent]) -> set:
    """For each (holder id, its status, duplicates, changes) of ``rows`` (distinct holders, their
    rows locked by the caller): ``duplicates`` more, the ``changes`` (``dedupe_counts`` and any of
    ``DEDUPE_FIELDS``), and its "deduplicated" line from ``lines`` (same order): the one it has,
    updated in place, or this one. Only where the holder is still in that status. The ids changed:
    one statement."""
    connection = connections["default"]
    fields = {name: Job._meta.get_field(name) for name in ("id", "status", "dedupe_counts", *DEDUPE_FIELDS)}
    unknown = {name for _, _, _, changes in rows for name in changes} - {"dedupe_counts", *DEDUPE_FIELDS}
    if unknown:
        raise ValueError(f"deduplicate_many: no column for {sorted(unknown)}")
    params: list[list] = [
        [fields["id"].get_db_prep_save(job_id, connection) for job_id, _, _, _ in rows],
        [status for _, status, _, _ in rows],
        [count for _, _, count, _ in rows],
        [fields["dedupe_counts"].get_db_prep_save(changes["dedupe_counts"], connection) for *_, changes in rows],
    ]
    for name in DEDUPE_FIELDS:
        params.append([name in changes for *_, changes in rows])
        field = fields[name]
        params.append([field.get_db_prep_save(changes.get(name), connection) for *_, changes in rows])
    params += [[line_value(field, field.pre_save(line, True), connection) for line in lines] for field in _EVENT_FIELDS]
    with _cursor() as cursor:
        cursor.execute(_dedupe_statement(), params)
        return {from_db("id", row[0], connection) for row in cursor.fetchall()}
