"""taskhub/broker.py: kombu's Redis transport with one Redis client per channel, on the suite's broker."""

import uuid

import pytest
from django.conf import settings

from taskhub.broker import Channel, Transport
from taskhub.celery import app

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"), reason="the Redis transport: run with a redis:// broker"
)


def test_a_redis_broker_uses_the_transport_that_keeps_one_client_per_channel():
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        assert isinstance(connection.default_channel, Channel)


def test_another_broker_url_keeps_its_own_transport():
    """Chosen by the URL's scheme: a RabbitMQ URL given at run time (``-b``, a test's worker) is not
    sent through the Redis transport."""
    with app.connection_for_write(url="amqp://guest:guest@127.0.0.1:5672//") as connection:
        assert not isinstance(connection.transport, Transport)
        assert type(connection.transport).__module__.startswith("kombu.transport.")


def test_messages_delivered_and_acknowledged_build_no_client_per_command():
    """kombu built a redis.Redis per command outside its consumer's own client: two per message (the
    unacknowledged record, then its removal at the ack). Now one per channel, however many messages."""
    name = f"taskhub-broker-test-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        built = []
        client_class = channel.Client

        def counting(**kwargs):
            built.append(kwargs)
            return client_class(**kwargs)

        channel.Client = counting
        queue = connection.SimpleQueue(name, channel=channel)
        try:
            for number in range(20):
                queue.put({"n": number})
            received = []
            for _ in range(20):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
            assert received == list(range(20))
            assert channel.client.hlen(channel.unacked_key) == 0  # every ack removed its record
            assert channel.client.zcard(channel.unacked_index_key) == 0
            assert len([kwargs for kwargs in built if kwargs["connection_pool"] is channel.pool]) <= 1
        finally:
            queue.queue.delete()
            queue.close()


def test_a_new_pool_after_a_disconnect_gets_a_new_client():
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        assert first.ping()
        channel._disconnect_pools()  # what kombu does when the connection is lost
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool and second.ping()
