"""Logging in through HTTP (POST /api/v1/auth/token/): a working token pair, the refusals, the
throttle (and what a proxy's X-Forwarded-For may not do to it)."""

import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import assert_error

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
ME = "/api/v1/users/me/"


def test_login_returns_a_working_token_pair(api_client, user, password, bearer_client):
    response = api_client.post(TOKEN, {"username": user.username, "password": password})

    assert response.status_code == 200, response.content
    tokens = response.json()
    assert AccessToken(tokens["access"])["user_id"] == str(user.pk)
    assert RefreshToken(tokens["refresh"])["user_id"] == str(user.pk)
    me = bearer_client(tokens["access"]).get(ME)
    assert me.status_code == 200
    assert me.json()["username"] == user.username
    user.refresh_from_db()
    assert user.last_login is not None


def test_login_with_a_wrong_password(api_client, user):
    response = api_client.post(TOKEN, {"username": user.username, "password": "not-the-password-1"})

    assert_error(response, 401, code="authentication_failed")


def test_login_as_an_unknown_user(api_client, db, password):
    response = api_client.post(TOKEN, {"username": "nobody", "password": password})

    assert_error(response, 401, code="authentication_failed")


def test_login_as_an_inactive_user(api_client, user, password):
    user.is_active = False
    user.save()

    response = api_client.post(TOKEN, {"username": user.username, "password": password})

    assert_error(response, 401, code="authentication_failed")


@pytest.mark.parametrize("missing", ["username", "password"])
def test_login_without_a_field(api_client, user, password, missing):
    data = {"username": user.username, "password": password}
    del data[missing]

    response = api_client.post(TOKEN, data)

    assert_error(response, 400, code="invalid", field=missing)


def test_login_with_an_unknown_field(api_client, user, password):
    response = api_client.post(TOKEN, {"username": user.username, "password": password, "remember": True})

    assert_error(response, 400, code="invalid", field="remember")


def test_login_is_throttled(api_client, user, password, throttle_rates):
    throttle_rates(login="3/min")
    wrong = {"username": user.username, "password": "guess-number-1"}
    for _ in range(3):
        assert_error(api_client.post(TOKEN, wrong), 401, code="authentication_failed")

    response = api_client.post(TOKEN, {"username": user.username, "password": password})

    body = assert_error(response, 429, code="throttled")
    assert "try again in" in body["message"]
    assert int(response["Retry-After"]) > 0


def test_a_new_x_forwarded_for_per_request_does_not_bypass_the_login_throttle(api_client, user, password):
    """With the production rate (10/min): the client's own address counts, not a header it sets."""
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"].split("/")[0])
    wrong = {"username": user.username, "password": "guess-number-1"}
    for attempt in range(limit):
        response = api_client.post(TOKEN, wrong, HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}")
        assert_error(response, 401, code="authentication_failed")
    right = {"username": user.username, "password": password}
    response = api_client.post(TOKEN, right, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert_error(response, 429, code="throttled")
