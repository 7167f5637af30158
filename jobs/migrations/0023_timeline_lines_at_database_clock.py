# A timeline line's time is the database's clock (DEFAULT now(), returned by the INSERT) unless the
# line names it: a worker or web host whose clock is off no longer writes its lines out of order
# with the row's own times, which are the database's clock already (started_at, finished_at, ...).

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0022_derived_timeline_lines"),
    ]

    operations = [
        migrations.AlterField(
            model_name="jobevent",
            name="at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
    ]
