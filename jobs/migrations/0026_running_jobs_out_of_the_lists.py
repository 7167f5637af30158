"""Running jobs leave the list orders' indexes and the pending jobs' one (issue 20, Performance II).

An ordinary job writes three row versions (its insert, its start, its finish), none a HOT update, and
every index whose condition holds for a version gets an entry for it. ``job_owner_created`` and
``job_created`` (the list orders, full until now) and ``job_active`` (pending and running jobs per
owner) each got one for the running version: 232 of the 2,229 WAL bytes a job wrote
(``pg_waldump`` of 500 jobs created in bulk, started and finished by the worker's statements). The
list orders now leave running jobs out; ``job_active`` becomes ``job_pending``. The running jobs (at
most the workers' slots) are read from ``job_running``, beside them: a list page reads both in one
statement (``JobQuerySet.running_apart``), a count or a scan says so in its terms
(``either_side_of_running``, ``ACTIVE``: jobs/models/jobs.py).

Built without blocking writes on PostgreSQL (``CONCURRENTLY``, outside a transaction: ``manage.py
migrate``), each under a new name swapped for the old one, as 0024 and 0025; the plain way elsewhere
(SQLite) and inside a transaction block (a test that migrates back and forth within its transaction).
"""

from django.db import migrations, models

NOT_RUNNING = ~models.Q(status="running")
ACTIVE = models.Q(("status__in", ("pending", "running")))
OWNER_CREATED = ("owner", "-created_at", "-id")
CREATED = ("-created_at", "-id")
BEFORE = [
    models.Index(fields=OWNER_CREATED, name="job_owner_created"),
    models.Index(fields=CREATED, name="job_created"),
    models.Index(condition=ACTIVE, fields=["owner", "status"], name="job_active"),
]
AFTER = [
    models.Index(fields=OWNER_CREATED, condition=NOT_RUNNING, name="job_owner_created"),
    models.Index(fields=CREATED, condition=NOT_RUNNING, name="job_created"),
    models.Index(fields=("owner",), condition=models.Q(status="pending"), name="job_pending"),
]


def _swap(apps, schema_editor, old: list[models.Index], new: list[models.Index]) -> None:
    """Replace the ``old`` indexes by the ``new`` ones (by position: each new one built first, under a
    temporary name, then the old one dropped and the new one renamed)."""
    model = apps.get_model("jobs", "Job")
    postgresql = schema_editor.connection.vendor == "postgresql"
    concurrently = postgresql and not schema_editor.connection.in_atomic_block
    keyword = " CONCURRENTLY" if concurrently else ""
    for before, after in zip(old, new, strict=True):
        if not postgresql:  # SQLite renames no index
            schema_editor.execute(f"DROP INDEX IF EXISTS {before.name}")
            schema_editor.add_index(model, after)
            continue
        building = models.Index(fields=after.fields, condition=after.condition, name=f"{after.name}_new")
        schema_editor.execute(f"DROP INDEX{keyword} IF EXISTS {building.name}")
        schema_editor.execute(building.create_sql(model, schema_editor, concurrently=concurrently))
        schema_editor.execute(f"DROP INDEX{keyword} IF EXISTS {before.name}")
        schema_editor.execute(f"ALTER INDEX {building.name} RENAME TO {after.name}")


def running_apart(apps, schema_editor):
    _swap(apps, schema_editor, BEFORE, AFTER)


def running_in(apps, schema_editor):
    _swap(apps, schema_editor, AFTER, BEFORE)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [("jobs", "0025_narrower_active_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *(migrations.RemoveIndex(model_name="job", name=index.name) for index in BEFORE),
                *(migrations.AddIndex(model_name="job", index=index) for index in AFTER),
            ],
            database_operations=[migrations.RunPython(running_apart, running_in, elidable=False)],
        )
    ]
