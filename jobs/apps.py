from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"

    def ready(self) -> None:
        # The checks that the settings' dotted paths and beat's tasks exist (taskhub/checks.py). Registered
        # here, not by an app of taskhub's own: standard_task() imports a job's path in any installed app.
        from taskhub import checks  # noqa: F401

        # Fill the task catalog in every process (web, worker, beat, commands): the built-in tasks, then
        # the task packages' (TASKHUB_APPS, TASKHUB_TASK_MODULES, the taskhub.plugins entry points).
        from . import tasks  # noqa: F401
        from .tasks.plugins import load_task_packages

        load_task_packages()

        # Timestamps from PostgreSQL load in psycopg's C loader, not Django's Python one (taskhub/db_adapters.py).
        from django.db.backends.signals import connection_created

        from taskhub.db_adapters import use_c_timestamp_loader

        connection_created.connect(use_c_timestamp_loader, dispatch_uid="c_timestamp_loader")

        # A deleted user's jobs go by cascade, with no service on the way: their duplicates' counts
        # (/metrics) go into the totals first, in the deleting transaction.
        from django.conf import settings
        from django.db.models.signals import pre_delete

        from .services.deduplicated import deduplicated_fold_owner

        pre_delete.connect(deduplicated_fold_owner, sender=settings.AUTH_USER_MODEL, dispatch_uid="deduplicated_fold")
