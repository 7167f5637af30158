"""Job rows in any state, for tests that start from a given point of the lifecycle.

Rows made here skip the services on purpose (no event, nothing sent): use them to set up a
state, then act through the services or the API and assert on the outcome.
"""

from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.tests.factories import UserFactory
from jobs.models import PRIORITY_QUEUES, Job, JobPriority, JobStatus

LONG_RUNNING_TASK = "jobs.tasks.common_tasks.long_running_task"


class JobFactory(DjangoModelFactory):
    class Meta:
        model = Job

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"job {n}")
    task_type = "test"
    celery_task_name = LONG_RUNNING_TASK
    args = factory.LazyFunction(lambda: [1])
    kwargs = factory.LazyFunction(dict)
    priority = JobPriority.NORMAL
    queue = factory.LazyAttribute(lambda job: PRIORITY_QUEUES[job.priority])
    status = JobStatus.PENDING
    created_at = factory.LazyFunction(timezone.now)

    class Params:
        running = factory.Trait(
            status=JobStatus.RUNNING,
            dispatched_at=factory.LazyFunction(timezone.now),
            started_at=factory.LazyFunction(timezone.now),
            heartbeat_at=factory.LazyFunction(timezone.now),
            worker="test-worker:1",
        )
        succeeded = factory.Trait(
            status=JobStatus.SUCCEEDED,
            progress=100,
            result=factory.LazyFunction(lambda: {"ok": True}),
            started_at=factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=5)),
            finished_at=factory.LazyFunction(timezone.now),
        )
        failed = factory.Trait(
            status=JobStatus.FAILED,
            error="RuntimeError: boom",
            traceback="Traceback (most recent call last):\nRuntimeError: boom\n",
            started_at=factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=5)),
            finished_at=factory.LazyFunction(timezone.now),
        )
        revoked = factory.Trait(
            status=JobStatus.REVOKED,
            cancel_requested_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
        )
