"""The fault suite's fixtures (test_faults.py): a broker of the scenario's own (Redis, then RabbitMQ),
the Procfile's processes on it, a private PostgreSQL cluster and an API client. The harness they
build on is taskhub/testing/faults.py."""

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from taskhub.testing import PostgresServer
from taskhub.testing.faults import BROKERS, Broker, Stack
from taskhub.testing.workers import reset_producers


@pytest.fixture(params=BROKERS)
def broker(request):
    server = Broker(request.param).start()
    yield server
    server.close()


@pytest.fixture
def stack(broker, transactional_db, monkeypatch):
    """A stack on the scenario's broker and the test database; this test process publishes to the
    same broker (its API creates jobs there)."""
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    reset_producers()
    processes = Stack(broker_url=broker.url)
    yield processes
    processes.close()
    reset_producers()


@pytest.fixture
def private_postgres():
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def api(transactional_db):
    client = APIClient()
    # The scenarios measure recovery with every worker process busy with this one user's jobs (a
    # backlog of 40 on 2 processes): no fair-share cap for them, as an operator sets for a batch user.
    client.force_authenticate(UserFactory(max_running_jobs=0))
    return client
