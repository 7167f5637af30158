"""django-q2 with its ORM broker: the no-op task and the enqueuer."""

import django


def noop(index: int = 0) -> int:
    return index


def prepare() -> None:
    django.setup()


def enqueue(count: int) -> None:
    """``async_task`` ``count`` times in one transaction.

    django-q2 has no bulk enqueue; its ORM broker inserts a row per task.
    """
    from django.db import transaction
    from django_q.tasks import async_task

    with transaction.atomic():
        for index in range(count):
            async_task("bench.peers.apps.djproject.django_q2_tasks.noop", index)
