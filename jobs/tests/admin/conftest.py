"""The admin tests' fixtures: an operator (superuser) and a job owner, the roles made by accounts'
migrations, and for the browser tests headless Chromium and the ASGI application served in a thread
of the test process. The helpers they build on are taskhub/testing/admin.py and browser.py."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.tests.factories import UserFactory
from taskhub.testing.admin import client_for, ensure_roles
from taskhub.testing.browser import CHROMIUM, CHROMIUM_ARGS, AsgiLiveServer


@pytest.fixture
def roles(db) -> dict[str, Group]:
    return ensure_roles()


@pytest.fixture
def operator(db):
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def owner(db):
    return UserFactory(username="alice")


@pytest.fixture
def operator_client(operator) -> Client:
    return client_for(operator)


@pytest.fixture
def asgi_live_server(transactional_db):
    server = AsgiLiveServer().start()
    yield server
    server.stop()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (the CI script .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
