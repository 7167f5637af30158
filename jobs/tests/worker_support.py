"""Fixtures for tests that run real Celery workers on the test database (PostgreSQL + Redis).

Import them into a test module with ``from jobs.tests.worker_support import *``.
"""

import pytest
import redis
from django.conf import settings

from jobs.models import Job, JobStatus
from taskhub.celery import app as celery_app
from taskhub.testing import RabbitMQVhost, RedisServer, WorkerProcess, wait_for

__all__ = [
    "broker_url",
    "make_worker",
    "private_redis",
    "rabbitmq_url",
    "use_broker",
    "wait_for",
    "wait_status",
    "worker",
]


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The suite's Redis broker (make test: redis db 14), emptied once per session."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.fail(f"Worker tests need a Redis broker; CELERY_BROKER_URL is {url!r}. Run them with `make test`.")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def make_worker(broker_url, transactional_db):
    """Start workers (function scope: each test gets fresh processes, stopped afterwards)."""
    started: list[WorkerProcess] = []

    def start(**options) -> WorkerProcess:
        options.setdefault("broker_url", broker_url)
        process = WorkerProcess(**options)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def worker(make_worker) -> WorkerProcess:
    return make_worker()


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which it may stop and restart."""
    server = RedisServer().start()
    yield server
    server.close()


def _reset_producers() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def use_broker(monkeypatch):
    """Point this test process's Celery app (the publishing side) at another broker."""

    def switch(url: str) -> None:
        monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery's conf.broker_url reads it first
        _reset_producers()

    yield switch
    _reset_producers()


@pytest.fixture
def rabbitmq_url(use_broker):
    """A RabbitMQ virtual host of this test's own; this process publishes there. Start workers on it
    with ``make_worker(broker_url=rabbitmq_url)``."""
    vhost = RabbitMQVhost().start()
    use_broker(vhost.url)
    yield vhost.url
    vhost.close()


def wait_status(job_id, *statuses: str, timeout: float = 30.0) -> Job:
    """Wait until the job reaches one of ``statuses`` (default: any terminal status)."""
    wanted = statuses or (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REVOKED)
    try:
        return wait_for(lambda: Job.objects.filter(id=job_id, status__in=wanted).first(), timeout=timeout)
    except AssertionError:
        status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
        raise AssertionError(f"job {job_id} did not become {'/'.join(wanted)} in {timeout}s: it is {status}") from None
