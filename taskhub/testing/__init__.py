"""The test harness: real processes, servers a test may take down, and the helpers the suite's
conftest.py files build their fixtures on. Used by the tests and the benchmarks; nothing here is
imported by the running app.

The names below need only configured settings; the modules that need the apps loaded (``admin``,
``browser``, ``faults``, ``workers``) are imported by their own path.
"""

from taskhub.testing.network import TcpProxy
from taskhub.testing.processes import (
    BASE_DIR,
    PRODUCTION_RECOVERY,
    SHORT_RECOVERY,
    BeatProcess,
    WorkerProcess,
    child_database_url,
    embedded_shell,
    free_port,
    wait_for,
)
from taskhub.testing.servers import AMQP_URL, PostgresServer, RabbitMQVhost, RedisServer, rabbitmqctl
from taskhub.testing.web import AsgiServer, Event, EventStream

__all__ = [
    "AMQP_URL",
    "BASE_DIR",
    "PRODUCTION_RECOVERY",
    "SHORT_RECOVERY",
    "AsgiServer",
    "BeatProcess",
    "Event",
    "EventStream",
    "PostgresServer",
    "RabbitMQVhost",
    "RedisServer",
    "TcpProxy",
    "WorkerProcess",
    "child_database_url",
    "embedded_shell",
    "free_port",
    "rabbitmqctl",
    "wait_for",
]
