"""A message is taken as sent only when the broker took it (publisher confirms on RabbitMQ).

A send to RabbitMQ used to wait for no answer: the message written into a connection that a partition
had silenced was taken as sent (``dispatched_at`` stamped) and lost with it; its job waited for the
sweeper's lost-message path (JOB_LOST_AFTER, 60 s) instead of its unsent path (JOB_DISPATCH_AFTER,
10 s). The many-hosts bed's scenario 3 saw it (docs/RELIABILITY.md). Now a send waits for the broker's
confirm, at most BROKER_CONFIRM_TIMEOUT seconds (the production default): a send that is not confirmed
leaves its job unsent, for the sweeper. On Redis a write is answered anyway (its socket timeout)."""

import time

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from jobs.models import Job
from jobs.services.creation import job_create, job_create_bulk
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.testing.servers import RabbitMQVhost


@pytest.fixture
def vhost(use_broker):
    server = RabbitMQVhost().start()
    use_broker(server.url)
    yield server
    server.close()


def create(owner) -> Job:
    job = job_create(owner=owner, celery_task_name=LONG_RUNNING_TASK, args=[0])
    return Job.objects.get(id=job.id)


def test_a_send_into_a_silenced_connection_is_not_taken_as_sent(vhost, transactional_db):
    owner = UserFactory()
    before = create(owner)  # the producer's connection is open and confirms
    assert before.dispatched_at is not None
    vhost.proxy.silence()
    started = time.monotonic()
    during = create(owner)
    took = time.monotonic() - started
    assert during.dispatched_at is None, "taken as sent, its message lost with the connection"
    assert took < settings.BROKER_CONFIRM_TIMEOUT + 5, took  # the create answers: the wait is bounded
    vhost.proxy.speak()
    connections = vhost.proxy.accepted
    after = create(owner)
    assert after.dispatched_at is not None
    # On a new connection: the silenced one may still deliver the unconfirmed message and its confirm
    # (TCP retransmits once the partition heals), which a next send on it would take for its own.
    assert vhost.proxy.accepted > connections
    assert vhost.queue_sizes().get(after.queue, 0) >= 1


def test_a_bulk_send_is_confirmed_message_by_message(vhost, transactional_db):
    owner = UserFactory()
    items = [{"celery_task_name": LONG_RUNNING_TASK, "args": [0]} for _ in range(50)]
    jobs = job_create_bulk(owner=owner, items=items)
    assert Job.objects.filter(id__in=[job.id for job in jobs], dispatched_at__isnull=False).count() == 50
    assert sum(vhost.queue_sizes().values()) == 50


def test_the_production_default_is_five_seconds():
    assert settings.BROKER_CONFIRM_TIMEOUT == 5.0
