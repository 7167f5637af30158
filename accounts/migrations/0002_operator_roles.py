"""The admin's two roles as groups.

- ``viewer``: reads jobs and their timelines (no action, no button).
- ``operator``: also submits jobs ("add"), cancels and retries them ("change", which the admin
  and the API ask for to operate) and deletes them ("delete").

Superusers need neither. Permissions are normally created after all migrations ran
(``post_migrate``); on a fresh database they do not exist yet, so they are created here first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "viewer": ("view_job", "view_jobevent"),
    "operator": ("view_job", "add_job", "change_job", "delete_job", "view_jobevent"),
}


def create_roles(apps, schema_editor):
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


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0003_attempts_help_text"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
