# Unique jobs (issue 21), continued: keep_latest's safety net (jobs/services/recovery.py, job_follow_up_lost)
# scans the partial index job_follow_up_waiting (only jobs holding a request are in it); dedupe_counts
# counts each job's duplicates by outcome for /metrics (jobs/services/deduplicated.py).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0020_lean_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="dedupe_counts",
            field=models.JSONField(
                blank=True,
                help_text='The duplicates deduplicated into this job by outcome ({"existing": 3}).',
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("unique_follow_up__isnull", False)),
                fields=["finished_at"],
                name="job_follow_up_waiting",
            ),
        ),
    ]
