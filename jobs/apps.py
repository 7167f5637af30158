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
