"""Fewer index entries per job row version (issue 20, Performance II; bench/README "The index reshape").

An ordinary job writes three row versions (insert, start, finish) and none is a HOT update (status
changes, and status is in the active jobs' partial indexes), so every index that holds a version gets
an entry for it. Three list indexes in the cursor's order are dropped (``?status=``, ``?task=``,
``?task_type=``: the cursor scan of ``job_owner_created`` or ``job_created`` serves them, with a partial
index for the rare ends: failed, revoked, expired); two partial indexes of active jobs (the quota's
per owner, the gauges' per status, queue and task) become one, per owner.
The new indexes are built before the old ones go, so no query is left without one meanwhile.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("jobs", "0019_unique_jobs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("status__in", ("failed", "revoked", "expired"))),
                fields=["status", "-created_at", "-id"],
                name="job_unsuccessful_created",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("status__in", ("pending", "running"))),
                fields=["owner", "status", "queue", "celery_task_name"],
                name="job_active",
            ),
        ),
        migrations.RemoveIndex(model_name="job", name="job_status_created"),
        migrations.RemoveIndex(model_name="job", name="job_task_created"),
        migrations.RemoveIndex(model_name="job", name="job_type_created"),
        migrations.RemoveIndex(model_name="job", name="job_owner_active"),
        migrations.RemoveIndex(model_name="job", name="job_active_queue_task"),
    ]
