from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"

    def ready(self) -> None:
        # Fill the task catalog in every process (web, worker, beat, commands).
        from . import tasks  # noqa: F401
