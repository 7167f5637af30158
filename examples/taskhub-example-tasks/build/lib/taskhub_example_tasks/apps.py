from django.apps import AppConfig


class ExampleTasksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "taskhub_example_tasks"
    verbose_name = "Example tasks"
