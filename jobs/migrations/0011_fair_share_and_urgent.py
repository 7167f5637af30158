
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0010_fewer_indexes'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='job',
            options={'ordering': ('-created_at',), 'permissions': [('submit_urgent', 'Can submit jobs with priority urgent')]},
        ),
        migrations.AlterField(
            model_name='jobevent',
            name='kind',
            field=models.CharField(choices=[('created', 'Created'), ('dispatched', 'Sent by the sweeper'), ('started', 'Started'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('retry_scheduled', 'Automatic retry scheduled'), ('cancel_requested', 'Cancel requested'), ('revoked', 'Revoked'), ('retried', 'Retried by an operator'), ('requeued', 'Re-queued after worker loss'), ('held', 'Held: its queue is paused'), ('rate_limited', 'Deferred by a rate limit'), ('fair_share', "Waiting for its owner's share of the workers")], max_length=20),
        ),
    ]
