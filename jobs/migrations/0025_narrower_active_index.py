"""The active jobs' index keyed by owner and status only (issue 20, Performance II).

``job_active`` (0020) held ``(owner, status, queue, celery_task_name)``: an entry as wide as the
task's dotted name, written at a job's insert and at its start (266 of the 2,374 WAL bytes an
ordinary job wrote: bench/throughput.py). Its readers bound their scans by the owner and the status
(a quota's active count, a fair share's running count); the gauges read every active row anyway
(for ``parents_remaining``), so the queue and the task in the index saved them nothing.

Built without blocking writes on PostgreSQL (``CONCURRENTLY``, outside a transaction: ``manage.py
migrate``), under a new name swapped for the old one, as 0024; the plain way elsewhere (SQLite) and
inside a transaction block (a test that migrates back and forth within its transaction).
"""

from django.db import migrations, models

ACTIVE = models.Q(("status__in", ("pending", "running")))
OLD = models.Index(condition=ACTIVE, fields=["owner", "status", "queue", "celery_task_name"], name="job_active")
NEW = models.Index(condition=ACTIVE, fields=["owner", "status"], name="job_active")


def _swap(apps, schema_editor, index: models.Index) -> None:
    model = apps.get_model("jobs", "Job")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {index.name}")
        schema_editor.add_index(model, index)
        return
    concurrently = "" if schema_editor.connection.in_atomic_block else " CONCURRENTLY"
    columns = ", ".join(model._meta.get_field(name).column for name in index.fields)
    schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {index.name}_new")
    schema_editor.execute(
        f"CREATE INDEX{concurrently} {index.name}_new ON jobs_job ({columns}) "
        "WHERE status IN ('pending', 'running')"
    )
    schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {index.name}")
    schema_editor.execute(f"ALTER INDEX {index.name}_new RENAME TO {index.name}")


def narrower(apps, schema_editor):
    _swap(apps, schema_editor, NEW)


def wider(apps, schema_editor):
    _swap(apps, schema_editor, OLD)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("jobs", "0024_argument_search_not_running")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="job", name="job_active"),
                migrations.AddIndex(model_name="job", index=NEW),
            ],
            database_operations=[migrations.RunPython(narrower, wider, elidable=False)],
        )
    ]
