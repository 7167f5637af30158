"""The argument search's GIN indexes leave out running jobs (issue 20, Performance II).

An ordinary job writes three row versions (its insert, its start, its finish), none a HOT update, and
a GIN index whose condition holds for a version gets an entry for each: 474 of the 2,508 WAL bytes a
job with kwargs wrote (bench/throughput.py). Their condition now leaves out ``running``, so the
start's version is not in them (two entries a job, not three). The search reads the running jobs
(at most the workers' slots) through ``job_running`` instead, and says so in its terms
(jobs/filters.py) so that the planner can use both. (Leaving out pending jobs too, one entry a job,
was tried: the search then read a pending backlog's every row through ``job_active``, its terms were
no longer selective, and at 1,000,000 jobs with 10,000 pending a staff search took 157 ms instead
of 16: bench/README.)

Built without blocking writes (``CONCURRENTLY``, outside a transaction: ``manage.py migrate``), under
a new name swapped for the old one. PostgreSQL only, as 0006 and 0014.
"""

from django.db import migrations

INDEXES = {"job_args_gin": ("args", "'[]'::jsonb"), "job_kwargs_gin": ("kwargs", "'{}'::jsonb")}
NOT_RUNNING = "status <> 'running'"


def _rebuild(schema_editor, condition) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    # CONCURRENTLY cannot run in a transaction block: a migration run inside one (a test that
    # migrates back and forth within its transaction) builds them the plain way.
    concurrently = "" if schema_editor.connection.in_atomic_block else " CONCURRENTLY"
    for name, (column, empty) in INDEXES.items():
        schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {name}_new")
        schema_editor.execute(
            f"CREATE INDEX{concurrently} {name}_new ON jobs_job USING gin ({column} jsonb_path_ops) "
            f"WHERE {column} <> {empty}{condition}"
        )
        schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {name}")
        schema_editor.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def not_running(apps, schema_editor):
    _rebuild(schema_editor, f" AND {NOT_RUNNING}")


def every_version(apps, schema_editor):
    _rebuild(schema_editor, "")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("jobs", "0023_timeline_lines_at_database_clock")]

    operations = [migrations.RunPython(not_running, every_version, elidable=False)]
