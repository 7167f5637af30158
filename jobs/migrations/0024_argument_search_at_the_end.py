"""The argument search's GIN indexes hold a job from its end only (issue 20, Performance II).

An ordinary job writes three row versions (its insert, its start, its finish), none a HOT update, and
a GIN index whose condition holds for a version gets an entry for each: 474 of the 2,508 WAL bytes a
job with kwargs wrote (bench/throughput.py). Their condition now adds the ended statuses, so only
the last version is in them (one entry a job, about 158 B). The search reads the active jobs (pending,
running: few beside the ended ones) through ``job_active`` instead, and says so in its terms
(jobs/filters.py) so that the planner can use both.

Built without blocking writes (``CONCURRENTLY``, outside a transaction), under a new name swapped
for the old one. PostgreSQL only, as 0006 and 0014.
"""

from django.db import migrations

INDEXES = {"job_args_gin": ("args", "'[]'::jsonb"), "job_kwargs_gin": ("kwargs", "'{}'::jsonb")}
ENDED = "status IN ('succeeded', 'failed', 'revoked', 'expired')"


def _rebuild(schema_editor, condition) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (column, empty) in INDEXES.items():
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY {name}_new ON jobs_job USING gin ({column} jsonb_path_ops) "
            f"WHERE {column} <> {empty}{condition}"
        )
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        schema_editor.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def at_the_end(apps, schema_editor):
    _rebuild(schema_editor, f" AND {ENDED}")


def every_version(apps, schema_editor):
    _rebuild(schema_editor, "")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("jobs", "0023_timeline_lines_at_database_clock")]

    operations = [migrations.RunPython(at_the_end, every_version, elidable=False)]
