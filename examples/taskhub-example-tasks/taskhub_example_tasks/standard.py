"""A task of Django's standard task API (`django.tasks`; on Django 5.2 the `django-tasks` backport):
taskhub's backend runs it as a tracked job, because this package is an installed app."""

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task

from .models import Tally


@task
def record_tally(kind: str, value: int) -> int:
    """Store a tally; returns its id."""
    return Tally.objects.create(kind=kind, value=value).id
