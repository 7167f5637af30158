"""The database's clock: heartbeats, staleness and metrics' ages are measured by it, so that hosts
whose clocks disagree still agree on "now"."""

from datetime import datetime

from django.db import connections
from django.utils import timezone


def database_now(using: str = "default") -> datetime:
    """PostgreSQL's ``statement_timestamp()``; this host's clock on other databases (SQLite: one host)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]
