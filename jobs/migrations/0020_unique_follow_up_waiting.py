# keep_latest's safety net (jobs/services/recovery.py, job_follow_up_lost): the sweep's scan for finished
# jobs still holding a request reads this partial index, which holds only jobs holding one.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0019_unique_jobs"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("unique_follow_up__isnull", False)),
                fields=["finished_at"],
                name="job_follow_up_waiting",
            ),
        ),
    ]
