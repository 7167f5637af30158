"""A cursor that binds its parameters on the server (PostgreSQL), for the statements written once as
SQL: the door's (``_sql``, ``_sql_bulk``) and the quotas' counts (``_quotas``). psycopg prepares such a
statement at its 5th run on a connection (``DATABASE_PREPARED_STATEMENTS``, default true;
taskhub/settings/database.py), and PostgreSQL then stops planning it at every call: on the job table,
with its 21 indexes, planning cost more than running (bench/README.md, "Prepared statements").
"""

from __future__ import annotations

import contextlib

import psycopg
from django.db import connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


class _DebugWrapper(CursorDebugWrapper):
    """Django's query log for these cursors (DEBUG, ``CaptureQueriesContext``): the statement with its
    values quoted in, as Django logs its own cursors' (it can be run as it is, e.g. under EXPLAIN).
    Django reads it back from psycopg's cursor, which keeps no text for a run of a prepared statement
    (DATABASE_PREPARED_STATEMENTS): the log said None. Formatted only while queries are logged."""

    def execute(self, sql, params=None):
        try:
            logged = psycopg.ClientCursor(self.cursor.connection).mogrify(sql, params)
        except Exception:  # noqa: BLE001 - a value only the server can take: the log keeps the placeholders
            logged = sql
        with self.debug_sql(logged, params, use_last_executed_query=False):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


@contextlib.contextmanager
def cursor():
    """A cursor binding its parameters on the server: Django's own cursors bind them into the SQL
    text, quoting every value in Python (a tenth of a pool process's CPU on short jobs). Wrapped as
    Django wraps its own cursors (the query log, ``CaptureQueriesContext``). psycopg prepares a
    statement at its 5th run on a connection (``DATABASE_PREPARED_STATEMENTS``, default true;
    taskhub/settings/database.py): PostgreSQL then stops planning it at every call."""
    connection = connections["default"]
    # What connection.cursor() does first: the health check (CONN_HEALTH_CHECKS), then connect.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = psycopg.Cursor(connection.connection)
    wrapper = _DebugWrapper if connection.queries_logged else CursorWrapper
    with wrapper(raw, connection) as cursor:
        yield cursor
