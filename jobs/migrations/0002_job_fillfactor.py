from django.db import migrations


def set_fillfactor(apps, schema_editor):
    # Leave room in each page so progress and heartbeat updates stay on the page (HOT updates).
    # https://www.postgresql.org/docs/current/storage-hot.html
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE jobs_job SET (fillfactor = 80)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE jobs_job RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor, elidable=False)]
