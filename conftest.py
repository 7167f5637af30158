"""Fixtures shared by every app's tests."""

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.tests.factories import UserFactory


def pytest_configure(config):
    # Tests serve static files from the apps' folders (no collectstatic run needed).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
    # The production hasher is slow on purpose (~0.3 s a password); tests hash hundreds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """Assert that ``response`` is an error in the API's one JSON shape; return the body.

    The shape is ``{"code": str, "message": str, "fields": {name: [str, ...]}}`` with
    ``fields`` present when input fields are at fault. ``field`` must then be one of them.
    Use it in every test that expects an error: ``from conftest import assert_error``.
    """
    body_text = response.content.decode(errors="replace")[:1000]
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {body_text}"
    content_type = response["Content-Type"]
    assert content_type.startswith("application/json"), content_type
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert isinstance(body.get("message"), str), body
    assert body["message"], body
    if "fields" in body:
        assert isinstance(body["fields"], dict), body
        assert body["fields"], body
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert field in body.get("fields", {}), body
        messages = body["fields"][field]
        assert isinstance(messages, list), body
        assert messages, body
        assert all(isinstance(message, str) and message for message in messages), body
    return body


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def throttle_rates(monkeypatch):
    """Change DRF throttle rates for one test: ``throttle_rates(login="3/min")``.

    DRF copies DEFAULT_THROTTLE_RATES onto the throttle classes at import, so overriding
    the setting has no effect; the class attribute is what a request reads.
    """

    def set_rates(**rates: str) -> dict[str, str]:
        merged = {**SimpleRateThrottle.THROTTLE_RATES, **rates}
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", merged)
        return merged

    return set_rates


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-staple-42"


@pytest.fixture
def user(db, password):
    return UserFactory(password=password)


@pytest.fixture
def other_user(db, password):
    return UserFactory(password=password)


@pytest.fixture
def staff_user(db, password):
    return UserFactory(password=password, is_staff=True)


@pytest.fixture
def staff_viewer(staff_user):
    """``staff_user`` with ``jobs.view_job`` (the viewer role): sees every user's jobs (a bare staff
    member sees only their own). Granted before ``staff_client``'s first request caches permissions."""
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    return staff_user


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def user_client(user) -> APIClient:
    return _client_for(user)


@pytest.fixture
def other_client(other_user) -> APIClient:
    return _client_for(other_user)


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    return _client_for(staff_user)


@pytest.fixture
def login(db):
    """Log in through the API (a real JWT pair): ``login(user.username, password)``."""

    def obtain(username: str, password: str) -> dict[str, str]:
        response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password})
        assert response.status_code == 200, response.content
        return response.json()

    return obtain


@pytest.fixture
def bearer_client():
    """An API client that sends ``Authorization: Bearer <access>``: ``bearer_client(token)``."""

    def make(access: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        return client

    return make
