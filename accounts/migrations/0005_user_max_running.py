
"""Fair shares: a user's own cap on running jobs (``max_running_jobs``), and urgent jobs as a right of
the ``operator`` role (``jobs.submit_urgent``; see 0002_operator_roles and 0004_queue_control_roles)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

ROLES = {"operator": ("submit_urgent",)}


def add_permissions(apps, schema_editor):
    using = schema_editor.connection.alias
    jobs = apps.get_app_config("jobs")
    # A historical app config has no models module, and create_permissions skips such apps.
    models_module = getattr(jobs, "models_module", None)
    jobs.models_module = True
    try:
        create_permissions(jobs, apps=apps, verbosity=0, using=using)
    finally:
        jobs.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        permissions = list(
            Permission.objects.using(using).filter(content_type__app_label="jobs", codename__in=codenames)
        )
        if len(permissions) != len(codenames):
            found = {permission.codename for permission in permissions}
            raise RuntimeError(f"Role {name}: permissions {sorted(set(codenames) - found)} do not exist.")
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*permissions)


def remove_permissions(apps, schema_editor):
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group = Group.objects.using(using).filter(name=name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.using(using).filter(content_type__app_label="jobs", codename__in=codenames)
            )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_queue_control_roles'),
        ('jobs', '0011_fair_share_and_urgent'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='max_running_jobs',
            field=models.PositiveIntegerField(blank=True, help_text='At most this many running jobs at once (more wait their turn). Empty: the JOB_QUOTA_MAX_RUNNING setting (by default half of the worker processes alive); 0: no limit.', null=True),
        ),
        migrations.RunPython(add_permissions, remove_permissions),
    ]
