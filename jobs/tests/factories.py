"""Job rows in any state, for tests that start from a given point of the lifecycle; the API's
prefixes and the specification's example request.

Rows made here skip the services on purpose (no event, nothing sent): use them to set up a
state, then act through the services or the API and assert on the outcome.
"""

from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.tests.factories import UserFactory
from jobs.models import PRIORITY_QUEUES, TERMINAL_STATUSES, Job, JobEvent, JobPriority, JobStatus
from jobs.timeline import job_lines

LONG_RUNNING_TASK = "jobs.tasks.common_tasks.long_running_task"
TERMINAL = [str(status) for status in TERMINAL_STATUSES]

# The jobs API's prefix and the original specification's, which serves the same views.
PREFIXES = ["/api/v1/jobs/", "/api/v1/tasks/"]

# The original specification's example request, byte for byte.
SPEC_BODY = {
    "name": "数据处理任务",
    "task_type": "data_processing",
    "celery_task_name": "app.tasks.common_tasks.long_running_task",
    "args": [60],
    "kwargs": {"param": "value"},
    "priority": "normal",
}


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
        expired = factory.Trait(
            status=JobStatus.EXPIRED,
            expires_at=factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=1)),
            finished_at=factory.LazyFunction(timezone.now),
        )


def make(status: str = "pending", **fields) -> Job:
    """A row in ``status`` (the factory trait of that name), no event, nothing sent."""
    return JobFactory(**({status: True} if status != "pending" else {}), **fields)


def kinds(job: Job) -> list[str]:
    """The job's timeline, as event kinds in order (its real and derived lines: ``jobs.timeline``)."""
    return [line.kind for line in timeline(job)]


def timeline(job: Job, *kinds: str) -> list[JobEvent]:
    """The job's timeline lines in order as its readers see them, real and derived (``jobs.timeline``),
    of ``kinds`` when given: what a test reads instead of ``JobEvent.objects.filter(kind=...)``."""
    return job_lines(job=Job.objects.get(id=job.id if isinstance(job, Job) else job), kinds=kinds or None)


def snapshot(job: Job) -> dict:
    """Every column of the row, to prove that a refused change wrote nothing."""
    return Job.objects.filter(id=job.id).values().get()


def ids(response) -> list[str]:
    """The job ids of a list page, in order."""
    return [job["id"] for job in response.json()["results"]]


def nested(depth: int) -> list:
    """A list nested ``depth`` levels deep (JSON the encoders cannot store past a limit)."""
    value: list = []
    for _ in range(depth):
        value = [value]
    return value
