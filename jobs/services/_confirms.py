"""RabbitMQ's publisher confirms for the sends of ``dispatch._publish``: a job's message counts as sent
only once the broker confirmed it.

Without them a send to RabbitMQ waits for no answer: a message written into a connection that a
partition silenced is taken as sent (its ``dispatched_at`` stamped) and lost with the connection, and
its job waits for the sweeper's lost-message path (``JOB_LOST_AFTER``) instead of its unsent path
(``JOB_DISPATCH_AFTER``). The many-hosts bed's scenario 3 saw it (docs/RELIABILITY.md).

The messages of one call are published without waiting, then their confirms are awaited together, at
most ``BROKER_CONFIRM_TIMEOUT`` seconds: one wait for a bulk create's 500 messages, not 500 (py-amqp's
own ``confirm_publish`` waits after each). They go on a channel of their own, in confirm mode, kept on
the pooled connection: the broker numbers that channel's messages from 1 and acks (or nacks) them by
that number, one or all up to it (``multiple``), and nothing else publishes there to shift the count.
Redis and the filesystem broker have no confirms: their writes are answered (Redis' socket timeout).
https://www.rabbitmq.com/docs/confirms#publisher-confirms
"""

from __future__ import annotations

import time
from typing import Any

from amqp import spec
from kombu import Producer


class Confirms:
    """The producer for one call's sends (``producer``) and their confirms (``published``, ``wait``)."""

    def __init__(self, pooled: Producer) -> None:
        connection = pooled.connection
        self.enabled = connection.transport.driver_type == "amqp"
        self.ids: list = []  # this call's messages, in publishing order
        self.tags: dict[int, Any] = {}  # delivery tag -> the job's id (RabbitMQ)
        self.channel = None
        self.producer = pooled
        if self.enabled:
            self.channel = _confirm_channel(connection)
            self.producer = Producer(self.channel, serializer=pooled.serializer)

    def published(self, job_id) -> None:
        """``job_id``'s message was just written."""
        self.ids.append(job_id)
        if self.enabled:
            state = self.channel.taskhub_confirms
            state.last_tag += 1
            state.outstanding.add(state.last_tag)
            self.tags[state.last_tag] = job_id

    def wait(self, timeout: float) -> tuple[list, bool]:
        """The ids the broker confirmed (in publishing order), and whether every message was answered
        within ``timeout`` seconds (False: the connection is not to be used again: its unconfirmed
        messages may still arrive, with confirms a later send would take for its own)."""
        if not self.enabled:
            return list(self.ids), True
        state = self.channel.taskhub_confirms
        deadline = time.monotonic() + timeout
        answered = True
        while any(tag not in state.answers for tag in self.tags):
            left = deadline - time.monotonic()
            if left <= 0:
                answered = False
                break
            try:
                self.channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=left)
            except TimeoutError:
                answered = False
                break
        confirmed = [job_id for tag, job_id in self.tags.items() if state.answers.pop(tag, False)]
        return confirmed, answered


def _confirm_channel(connection) -> Any:
    """The pooled connection's confirming channel, opened (and put in confirm mode) on first use and
    again after the connection was re-established."""
    channel = getattr(connection, "taskhub_confirm_channel", None)
    if channel is None or not channel.is_open or channel.connection is None:
        channel = connection.channel()
        channel.confirm_select()
        channel.taskhub_confirms = _Numbering()
        channel.events["basic_ack"].add(channel.taskhub_confirms.ack)
        channel.events["basic_nack"].add(channel.taskhub_confirms.nack)
        connection.taskhub_confirm_channel = channel
    return channel


class _Numbering:
    """A confirming channel's messages not answered yet, and the answers not read yet (tag -> acked)."""

    def __init__(self) -> None:
        self.last_tag = 0
        self.outstanding: set[int] = set()
        self.answers: dict[int, bool] = {}

    def ack(self, delivery_tag: int, multiple: bool) -> None:
        self._answer(delivery_tag, multiple, True)

    def nack(self, delivery_tag: int, multiple: bool) -> None:
        self._answer(delivery_tag, multiple, False)

    def _answer(self, delivery_tag: int, multiple: bool, acked: bool) -> None:
        tags = {tag for tag in self.outstanding if tag <= delivery_tag} if multiple else {delivery_tag}
        self.outstanding -= tags
        self.answers.update(dict.fromkeys(tags, acked))
