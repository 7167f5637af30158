"""Schedule names per owner: a user's periodic task is stored as ``user:<owner id>:<name>``.

Forward, every periodic task with an owner (a JobSchedule) not yet in that form is renamed; a
name too long for the column (200) is cut, and a cut name already taken gets ``#<id>``. Backward,
the prefix is removed again where the bare name is free (names were unique across users then);
a name two users share keeps its prefix on all but one row.
"""

from django.db import migrations

COLUMN = 200


def _prefix(owner_id: int) -> str:
    return f"user:{owner_id}:"


def names_per_owner(apps, schema_editor):
    JobSchedule = apps.get_model("jobs", "JobSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for schedule in JobSchedule.objects.select_related("periodic_task").order_by("pk").iterator():
        periodic_task, prefix = schedule.periodic_task, _prefix(schedule.owner_id)
        if periodic_task.name.startswith(prefix):
            continue
        name = (prefix + periodic_task.name)[:COLUMN]
        if PeriodicTask.objects.filter(name=name).exclude(pk=periodic_task.pk).exists():
            suffix = f"#{periodic_task.pk}"
            name = name[: COLUMN - len(suffix)] + suffix
        PeriodicTask.objects.filter(pk=periodic_task.pk).update(name=name)


def names_across_owners(apps, schema_editor):
    JobSchedule = apps.get_model("jobs", "JobSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for schedule in JobSchedule.objects.select_related("periodic_task").order_by("pk").iterator():
        periodic_task, prefix = schedule.periodic_task, _prefix(schedule.owner_id)
        if not periodic_task.name.startswith(prefix):
            continue
        name = periodic_task.name[len(prefix) :]
        if name and not PeriodicTask.objects.filter(name=name).exists():
            PeriodicTask.objects.filter(pk=periodic_task.pk).update(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_fair_share_and_urgent"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(names_per_owner, names_across_owners)]
