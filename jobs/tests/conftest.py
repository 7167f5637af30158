"""Fixtures every jobs test may use: the messages published, "nothing written", fresh rate limits;
and real Celery workers on the test database with the brokers they use (PostgreSQL + Redis)."""

from contextlib import contextmanager

import pytest
import redis
from celery.signals import after_task_publish
from django.conf import settings

from jobs.models import Job, JobEvent
from jobs.services.gates import forget_limits
from taskhub.testing import RabbitMQVhost, RedisServer, WorkerProcess
from taskhub.testing.workers import reset_producers


@pytest.fixture
def published():
    """Messages Celery actually handed to the broker during the test, in order.

    Each is ``{"id", "task", "routing_key", "args", "kwargs"}``. Observed through Celery's own
    ``after_task_publish`` signal, so nothing of ours is replaced.
    """
    messages: list[dict] = []

    def record(sender=None, headers=None, body=None, routing_key=None, **extra):
        args, kwargs, _ = body
        messages.append(
            {
                "id": headers["id"],
                "task": headers["task"],
                "routing_key": routing_key,
                "args": args,
                "kwargs": kwargs,
            }
        )

    after_task_publish.connect(record, weak=False)
    yield messages
    after_task_publish.disconnect(record)


@pytest.fixture
def nothing_written(published, django_capture_on_commit_callbacks):
    """``with nothing_written(): ...``: no job, no event, no after-commit send, no message."""

    @contextmanager
    def check():
        before = (Job.objects.count(), JobEvent.objects.count())
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            yield
        assert callbacks == []
        assert (Job.objects.count(), JobEvent.objects.count()) == before
        assert published == []

    return check


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate limits are cached per process for a second: a test never sees another test's."""
    forget_limits()
    yield
    forget_limits()


# --- real workers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker_url() -> str:
    """The suite's Redis broker (make test: redis db 14), emptied before each module's first worker
    test: messages one module left unconsumed never reach another module's workers."""
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


@pytest.fixture
def use_broker(monkeypatch):
    """Point this test process's Celery app (the publishing side) at another broker."""

    def switch(url: str) -> None:
        monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery's conf.broker_url reads it first
        reset_producers()

    yield switch
    reset_producers()


@pytest.fixture
def rabbitmq_url(use_broker):
    """A RabbitMQ virtual host of this test's own; this process publishes there. Start workers on it
    with ``make_worker(broker_url=rabbitmq_url)``."""
    vhost = RabbitMQVhost().start()
    use_broker(vhost.url)
    yield vhost.url
    vhost.close()
