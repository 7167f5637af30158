"""Security II: the django.tasks service account made here and found by its flag (not by name),
usernames' look-alike skeletons, and e-mail verification (existing addresses start unverified:
they could have been set to anyone's address without proof)."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations, models

from accounts.usernames import skeleton


def fill_skeletons(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    using = schema_editor.connection.alias
    for user in User.objects.using(using).only("pk", "username").iterator():
        User.objects.using(using).filter(pk=user.pk).update(username_skeleton=skeleton(user.username))


def create_service_account(apps, schema_editor):
    """The service account (holding jobs.submit_urgent), named TASKS OWNER; if a person already holds that name, it gets the
    first free ``<name>-service[-n]`` instead (the person keeps their name and owns nothing new)."""
    User = apps.get_model("accounts", "User")
    using = schema_editor.connection.alias
    users = User.objects.using(using)
    if users.filter(is_service_account=True).exists():
        return
    base = settings.TASKS.get("default", {}).get("OPTIONS", {}).get("OWNER", "django-tasks")
    candidates = [base, f"{base}-service", *(f"{base}-service-{n}" for n in range(2, 100))]
    name = next(c for c in candidates if not users.filter(username__iexact=c).exists())
    service = users.create(
        username=name,
        username_skeleton=skeleton(name),
        email=f"{name}@service.invalid",
        password=make_password(None),
        is_service_account=True,
    )
    # The server's own code may enqueue urgent tasks (accounts 0005 made the permission).
    Permission = apps.get_model("auth", "Permission")
    service.user_permissions.add(
        *Permission.objects.using(using).filter(content_type__app_label="jobs", codename="submit_urgent")
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_user_max_running'),
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='email_verified',
            field=models.BooleanField(default=False, help_text='The owner proved they read this address (the link of a verification mail).'),
        ),
        migrations.AddField(
            model_name='user',
            name='email_verified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='user',
            name='is_service_account',
            field=models.BooleanField(default=False, editable=False, help_text="The account that owns jobs enqueued on no person's behalf (django.tasks); it never signs in."),
        ),
        migrations.AddField(
            model_name='user',
            name='pending_email',
            field=models.EmailField(blank=True, default=None, null=True, help_text='An address asked for and not verified yet; it replaces email once verified.', max_length=254),
        ),
        migrations.AddField(
            model_name='user',
            name='username_skeleton',
            field=models.CharField(db_index=True, default='', editable=False, max_length=1000),
        ),
        migrations.AddConstraint(
            model_name='user',
            constraint=models.UniqueConstraint(condition=models.Q(('is_service_account', True)), fields=('is_service_account',), name='accounts_user_one_service_account'),
        ),
        migrations.RunPython(fill_skeletons, migrations.RunPython.noop),
        # Backwards the account stays (its jobs keep their owner); the flag goes with its column.
        migrations.RunPython(create_service_account, migrations.RunPython.noop),
    ]
