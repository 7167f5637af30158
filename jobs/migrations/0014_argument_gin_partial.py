"""The argument search's GIN indexes (0006) leave out jobs without arguments: ``args`` ``[]`` or
``kwargs`` ``{}``, which no search term can match. Such a row writes no GIN entries (an empty value
still wrote one), at its insert and at each of its row versions. The search adds the matching
``<> '[]'`` / ``<> '{}'`` condition to its terms (jobs/filters.py) so that the planner may use them.
PostgreSQL only, as 0006.
"""

from django.db import migrations

INDEXES = {"job_args_gin": ("args", "'[]'::jsonb"), "job_kwargs_gin": ("kwargs", "'{}'::jsonb")}


def partial(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, (column, empty) in INDEXES.items():
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
            schema_editor.execute(
                f"CREATE INDEX {name} ON jobs_job USING gin ({column} jsonb_path_ops) WHERE {column} <> {empty}"
            )


def whole(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, (column, _) in INDEXES.items():
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
            schema_editor.execute(f"CREATE INDEX {name} ON jobs_job USING gin ({column} jsonb_path_ops)")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0013_run_min_max")]

    operations = [migrations.RunPython(partial, whole, elidable=False)]
