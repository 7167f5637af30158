"""Queue control in the admin's two roles (see 0002_operator_roles).

- ``viewer``: sees queues, their rate limits and the audit trail of changes.
- ``operator``: also pauses and resumes queues and sets or clears rate limits
  (``jobs.change_queuecontrol``, which the admin, the API and the command ask for).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "viewer": ("view_queuecontrol", "view_ratelimit", "view_queuecontrolchange"),
    "operator": ("view_queuecontrol", "change_queuecontrol", "view_ratelimit", "view_queuecontrolchange"),
}


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
        ("accounts", "0003_user_quotas"),
        ("jobs", "0008_queue_control"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
