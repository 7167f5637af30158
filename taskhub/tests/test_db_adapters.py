"""Timestamps read from PostgreSQL load in psycopg's C loader (``taskhub.db_adapters``), with the
values Django's own loader gives."""

import datetime

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from taskhub.db_adapters import UtcTimestampLoader

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's loaders: PostgreSQL only"),
]

TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid
# Microseconds, before 1970, a leap day, the ends of the range, a zone's offset in the text.
MOMENTS = """SELECT v FROM unnest(ARRAY[
    '2026-12-07 10:11:51.508625+00', '1969-07-20 20:17:40+00', '2024-02-29 23:59:59.999999+00',
    '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00', '2026-06-01 12:00:00+05:30', NULL
]::timestamptz[]) AS v"""


def loader_of(wrapper):
    return wrapper.connection.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)


def read_moments(wrapper, query: str = MOMENTS) -> list:
    with wrapper.cursor() as cursor:
        cursor.execute(query)
        return [row[0] for row in cursor.fetchall()]


def test_django_connections_load_timestamps_in_psycopgs_optimised_loader():
    connection.ensure_connection()

    loader = loader_of(connection)
    assert loader is UtcTimestampLoader
    assert loader.timezone is datetime.UTC  # as Django's: its cursors keep the connection's loader
    if psycopg.pq.__impl__ in ("c", "binary"):  # psycopg's C module: the loader it wraps is the C one
        assert UtcTimestampLoader.inner.__module__.startswith("psycopg_")


def test_values_are_the_ones_djangos_loader_gives():
    ours = read_moments(connection)
    connection.connection.adapters.register_loader("timestamptz", _DjangoUtc)
    try:
        django = read_moments(connection)
    finally:
        connection.connection.adapters.register_loader("timestamptz", UtcTimestampLoader)

    assert ours == django
    assert [value.tzinfo for value in ours if value] == [datetime.UTC] * 6
    assert ours[0] == datetime.datetime(2026, 12, 7, 10, 11, 51, 508625, tzinfo=datetime.UTC)
    assert ours[5] == datetime.datetime(2026, 6, 1, 6, 30, tzinfo=datetime.UTC)
    assert ours[-1] is None


def test_a_connection_borrowed_again_from_the_pool_keeps_it():
    for _ in range(3):
        connection.close()  # back to the pool (or closed, without one)
        connection.ensure_connection()
        assert loader_of(connection) is UtcTimestampLoader
        assert read_moments(connection)[0].microsecond == 508625


def test_a_database_in_another_time_zone_keeps_djangos_loader():
    """DATABASES' TIME_ZONE other than UTC: Django's loader, which stamps its zone, stays."""
    settings_dict = {**connections["default"].settings_dict, "TIME_ZONE": "Europe/Paris"}
    settings_dict["OPTIONS"] = {k: v for k, v in settings_dict["OPTIONS"].items() if k != "pool"}
    other = connections["default"].__class__(settings_dict, alias="paris")
    try:
        other.ensure_connection()
        assert issubclass(loader_of(other), BaseTzLoader)
        [moment] = read_moments(other, "SELECT '2026-12-07 10:11:51.508625+00'::timestamptz")
        assert str(moment.tzinfo) == "Europe/Paris"
        assert moment == datetime.datetime(2026, 12, 7, 10, 11, 51, 508625, tzinfo=datetime.UTC)
    finally:
        other.close()


class _DjangoUtc(BaseTzLoader):
    timezone = datetime.UTC
