"""django-tasks-db (the django-tasks database backend): the no-op task and the enqueuer."""

import django

django.setup()  # the task decorator below looks the backend up in the settings

from django_tasks import task  # noqa: E402


@task()
def noop(index: int = 0) -> int:
    return index


def prepare() -> None:
    pass


def enqueue(count: int) -> None:
    """``Task.enqueue`` ``count`` times in one transaction (the Tasks API has no bulk enqueue)."""
    from django.db import transaction

    with transaction.atomic():
        for index in range(count):
            noop.enqueue(index)
