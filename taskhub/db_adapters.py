"""Timestamps read from PostgreSQL load in psycopg's C loader.

Django loads every ``timestamptz`` through its own loader (``psycopg_any.BaseTzLoader``), a
subclass of psycopg's pure-Python ``TimestamptzLoader``: psycopg swaps its loaders for their C
versions only when they are its own classes, so with psycopg's C module installed every
timestamp was still parsed by a regular expression in Python. A list page of 50 jobs reads 256
of them; in a profile of the page (``GET /api/v1/jobs/``, in-process, the whole middleware
stack) their loading was a fifth of the request's CPU.

``UtcTimestampLoader`` hands the text to psycopg's own (C) loader and stamps the result UTC, as
Django's loader does. It applies where Django's loader would stamp UTC (``USE_TZ`` on, no
``TIME_ZONE`` in ``DATABASES``: the connection's session time zone is UTC, set by Django); a
database with a ``TIME_ZONE`` of its own keeps Django's loader. Django's cursors keep the
connection's loader because its ``timezone`` is the connection's (``create_cursor``).
https://www.psycopg.org/psycopg3/docs/advanced/adapt.html#writing-a-custom-adapter-xml
"""

import datetime

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

UTC = datetime.UTC
TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid


class UtcTimestampLoader(Loader):
    # psycopg's registered text loader: the C one when psycopg's C module is installed.
    inner = psycopg.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
    timezone = UTC  # read by Django's create_cursor, as BaseTzLoader.timezone

    def __init__(self, oid: int, context=None) -> None:
        super().__init__(oid, context)
        self._load = self.inner(oid, context).load

    def load(self, data):
        value = self._load(data)
        return value if value.tzinfo is UTC else value.replace(tzinfo=UTC)


def use_c_timestamp_loader(sender, connection, **kwargs) -> None:
    """``connection_created``: every new (or, pooled, borrowed) PostgreSQL connection in UTC."""
    if connection.vendor != "postgresql" or connection.timezone is not UTC:
        return
    adapters = connection.connection.adapters
    if adapters.get_loader(TIMESTAMPTZ, Format.TEXT) is not UtcTimestampLoader:
        adapters.register_loader("timestamptz", UtcTimestampLoader)
