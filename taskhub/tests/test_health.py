"""Liveness and readiness probes, on the real database and a real (private) Redis broker."""

import time

import pytest

from conftest import assert_error
from taskhub.celery import app as celery_app
from taskhub.testing import RedisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_broker(monkeypatch):
    """A redis-server of this test's own, which the web side's Celery app uses as broker.

    Celery reads CELERY_BROKER_URL from the environment before its own configuration, so
    both are pointed at the private server.
    """
    server = RedisServer().start()
    monkeypatch.setattr(celery_app.conf, "broker_url", server.url)
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    yield server
    server.close()


def test_healthz(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_with_database_and_broker_up(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok"},
    }


def test_readyz_follows_the_broker_going_down_and_up(client, private_broker):
    assert client.get("/readyz").status_code == 200

    private_broker.stop()
    started = time.monotonic()
    down = client.get("/readyz")
    took = time.monotonic() - started

    body = assert_error(down, 503, code="not_ready")
    assert "broker" in body["message"]
    assert "database" not in body["message"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("down: ")
    assert took < 1, f"a readiness probe must answer within 1 s, took {took:.1f}s"

    private_broker.start()
    up = client.get("/readyz")
    assert up.status_code == 200, up.content
    assert up.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/v1/no-such-thing", "/api/nothing"])
def test_unknown_api_url_is_a_json_404(client, path):
    body = assert_error(client.get(path), 404, code="not_found")

    assert path in body["message"]


def test_wrong_method_on_an_api_url_is_a_json_405(api_client):
    response = api_client.delete("/api/v1/auth/token/")

    assert_error(response, 405, code="method_not_allowed")
