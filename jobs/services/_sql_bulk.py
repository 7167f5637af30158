"""A bulk request's keyed jobs in one statement (PostgreSQL; only the door, ``_state``, uses it).

``insert_unique_many`` is ``_sql.insert_unique`` for many jobs of one owner with distinct keys:
one ``INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE … RETURNING``, each column one
array parameter, with the ``created`` lines of the rows it inserted in the same statement. Rows
go in key order (the caller's), so overlapping bulk requests take their keys in one order. The
caller has folded same-key items into one first: PostgreSQL refuses to affect a row twice in one
statement.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connections

from ..models import Job, JobEvent
from ._sql import _JOB_FIELDS, EVENT, HOLDER_FIELDS, JOB, _cursor, from_db

_EVENT_FIELDS = [field for field in JobEvent._meta.concrete_fields if not field.primary_key]


@functools.cache
def _statement() -> str:
    connection = connections["default"]
    job_columns = ", ".join(f'"{field.column}"' for field in _JOB_FIELDS)
    job_arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in _JOB_FIELDS)
    line_columns = ", ".join(f'"{field.column}"' for field in _EVENT_FIELDS)
    line_arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in _EVENT_FIELDS)
    names = ", ".join(f"c{index}" for index in range(len(_JOB_FIELDS)))
    line_names = ", ".join(f"e{index}" for index in range(len(_EVENT_FIELDS)))
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
    SELECT {line_names} FROM unnest({line_arrays}) AS lines({line_names})
    JOIN job ON job.inserted AND job.id = lines.{job_id}
)
SELECT * FROM job
"""


def insert_unique_many(jobs: list[Job], lines: list[JobEvent]) -> list[dict[str, Any] | None]:
    """Write each of ``jobs`` (one owner, distinct keys) and its ``created`` line in ``lines`` (those
    its row derives are left out of them: ``jobs.timeline``; a line joins its job by id), unless a job
    holds its key: then nothing is written for it and the holder's ``HOLDER_FIELDS`` come back in
    its place, its row locked until the transaction ends (None: written). One statement."""
    connection = connections["default"]
    params = [[field.get_db_prep_save(field.pre_save(job, True), connection) for job in jobs] for field in _JOB_FIELDS]
    params += [
        [field.get_db_prep_save(field.pre_save(line, True), connection) for line in lines] for field in _EVENT_FIELDS
    ]
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
