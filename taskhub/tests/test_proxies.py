"""Which address is the client: one setting, FORWARDED_ALLOW_IPS, for uvicorn and the throttles.

Each deployment of README's "Behind a proxy" runs here as the Procfile's web process (a real uvicorn
on 127.0.0.1), with the login throttle at 2 a minute. The "client" connects from a loopback address
of its own choosing (127.0.0.x: the whole 127.0.0.0/8 reaches the server), so a direct client, a
proxy on the same host and a load balancer elsewhere are different addresses. What counts is read
twice: the throttle's buckets (a third attempt from one address is a 429) and uvicorn's access log.
"""

import http.client
import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from taskhub.testing import AsgiServer, child_database_url

pytestmark = [pytest.mark.timeout(120)]
TOKEN = "/api/v1/auth/token/"


class SourceConnection(http.client.HTTPConnection):
    """An HTTP connection from a chosen local address (a client, a proxy, a load balancer)."""

    def __init__(self, port: int, source: str) -> None:
        super().__init__("127.0.0.1", port, timeout=10, source_address=(source, 0))


def login_attempt(server: AsgiServer, *, source: str, forwarded_for: str | None = None) -> int:
    """A wrong password for user "proxied" from ``source``, with an X-Forwarded-For header or not."""
    conn = SourceConnection(server.port, source)
    headers = {"Content-Type": "application/json"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        conn.request("POST", TOKEN, body=json.dumps({"username": "proxied", "password": "wrong-one"}), headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.fixture
def web(transactional_db):
    """Start the Procfile's web process with ``FORWARDED_ALLOW_IPS`` (None: unset, the default)."""
    UserFactory(username="proxied")
    servers = []

    def start(forwarded_allow_ips: str | None) -> AsgiServer:
        env = {
            "DATABASE_URL": child_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "THROTTLE_LOGIN": "2/min",
            "FORWARDED_ALLOW_IPS": forwarded_allow_ips,
        }
        server = AsgiServer(env=env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def logged_clients(server: AsgiServer) -> list[str]:
    """The client addresses of uvicorn's access log lines for the token endpoint, in order."""
    return re.findall(rf'(\d+\.\d+\.\d+\.\d+):\d+ - "POST {TOKEN}', server.output())


def test_no_proxy_a_forged_x_forwarded_for_keeps_the_clients_own_bucket(web):
    """The default (FORWARDED_ALLOW_IPS unset): nobody's X-Forwarded-For is read, not even from
    127.0.0.1 (uvicorn's own default would trust it)."""
    server = web(None)
    statuses = [login_attempt(server, source="127.0.0.1", forwarded_for=f"203.0.113.{n}") for n in range(3)]
    assert statuses == [401, 401, 429]
    assert logged_clients(server) == ["127.0.0.1"] * 3


def test_a_proxy_on_the_same_host_the_address_it_appends_is_the_client(web):
    """FORWARDED_ALLOW_IPS=127.0.0.1 (nginx on the host): the address the proxy appends counts; what
    the client put before it (forged) does not; a client reaching the server directly from another
    address is not trusted."""
    server = web("127.0.0.1")
    # The client 198.51.100.7 forges a new first address each time; the proxy appends the real one.
    first = [login_attempt(server, source="127.0.0.1", forwarded_for=f"203.0.113.{n}, 198.51.100.7") for n in range(3)]
    assert first == [401, 401, 429]
    # Another client behind the same proxy has a bucket of its own.
    assert login_attempt(server, source="127.0.0.1", forwarded_for="198.51.100.8") == 401
    # A direct client (not the proxy) forging the header is itself: 127.0.0.5.
    direct = [login_attempt(server, source="127.0.0.5", forwarded_for=f"198.51.100.{n}") for n in range(20, 23)]
    assert direct == [401, 401, 429]
    assert logged_clients(server) == ["198.51.100.7"] * 3 + ["198.51.100.8"] + ["127.0.0.5"] * 3


def test_a_load_balancer_elsewhere_is_trusted_by_its_network(web):
    """FORWARDED_ALLOW_IPS=127.0.0.16/28 (the load balancers' network; 127.0.0.20 stands for one):
    its X-Forwarded-For counts; the same header from 127.0.0.1 (not a balancer) does not."""
    server = web("127.0.0.16/28")
    balanced = [login_attempt(server, source="127.0.0.20", forwarded_for="192.0.2.44") for _ in range(3)]
    assert balanced == [401, 401, 429]
    assert login_attempt(server, source="127.0.0.20", forwarded_for="192.0.2.45") == 401
    forged = [login_attempt(server, source="127.0.0.1", forwarded_for="192.0.2.46") for _ in range(3)]
    assert forged == [401, 401, 429]
    assert logged_clients(server) == ["192.0.2.44"] * 3 + ["192.0.2.45"] + ["127.0.0.1"] * 3


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.internal", "10.0.0.0/33", "127.0.0.1,,"])
def test_a_malformed_forwarded_allow_ips_stops_the_start_naming_it(value):
    """uvicorn would take a typo as a literal host name and silently trust nobody (or the wrong one)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "FORWARDED_ALLOW_IPS": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "FORWARDED_ALLOW_IPS" in result.stderr, result.stderr[-2000:]


def test_num_proxies_is_refused_with_what_replaces_it():
    import os

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "NUM_PROXIES": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "FORWARDED_ALLOW_IPS" in result.stderr, result.stderr[-2000:]
