"""GIN indexes for the argument search (jobs/filters.py): ``args @> ...`` and ``kwargs @> ...``.

jsonb_path_ops indexes only containment, which is all the search asks, and is about a third of
the default operator class's size. PostgreSQL only: SQLite (the embedded default) has no GIN and
matches top-level kwargs by scanning. Kept out of the model's Meta for that reason.
"""

from django.db import migrations

INDEXES = {"job_args_gin": "args", "job_kwargs_gin": "kwargs"}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, column in INDEXES.items():
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON jobs_job USING gin ({column} jsonb_path_ops)")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0005_job_owner_active")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
