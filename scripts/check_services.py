"""Check that the services the test suite needs answer, with a clear message when not."""

import os
import socket
import sys
from urllib.parse import urlparse

NEEDED = {
    "PostgreSQL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskhub"),
    "Redis": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14"),
}
# The worker tests and the fault suite also run on RabbitMQ, in virtual hosts of their own.
NEEDED["RabbitMQ"] = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "amqp": 5672}

down = []
for name, url in NEEDED.items():
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        down.append(f"  {name} at {host}:{port} ({exc.strerror or exc})")
names = " and ".join([", ".join(list(NEEDED)[:-1]), list(NEEDED)[-1]])
if down:
    sys.exit(
        f"The test suite needs {names}, and these do not answer:\n"
        + "\n".join(down)
        + "\nStart them (see README: Running the tests), or point TEST_DATABASE_URL / TEST_BROKER_URL at yours."
    )
print(f"{names} answer.")
