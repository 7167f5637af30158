# Derived timeline lines (issue 20): a job's ordinary created line is read from its row (jobs/timeline.py),
# which keeps how it was created ("", "bulk", "schedule") for the line's message.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0021_unique_follow_ups_and_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="created_via",
            field=models.CharField(
                blank=True,
                choices=[("", "one create"), ("bulk", "a bulk create"), ("schedule", "a schedule")],
                default="",
                help_text="How it was created, as its created line (derived from the row: jobs/timeline.py) says.",
                max_length=10,
            ),
        ),
    ]
