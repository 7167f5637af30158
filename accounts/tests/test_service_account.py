"""The service account (owner of django.tasks jobs) cannot sign in: no password, and JWT and
session authentication refuse it even with a token or session made for it."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.services import user_service_account
from conftest import assert_error

pytestmark = pytest.mark.django_db

ME = "/api/v1/users/me/"


def test_a_token_made_for_the_service_account_is_refused(bearer_client):
    service = user_service_account()

    response = bearer_client(str(AccessToken.for_user(service))).get(ME)

    assert_error(response, 401)


def test_a_refresh_token_of_the_service_account_is_refused(api_client):
    service = user_service_account()

    response = api_client.post("/api/v1/auth/token/refresh/", {"refresh": str(RefreshToken.for_user(service))})

    assert_error(response, 401)


def test_a_session_of_the_service_account_is_refused():
    service = user_service_account()
    client = APIClient()
    client.force_login(service)

    assert_error(client.get(ME), 401, code="not_authenticated")


def test_the_service_account_cannot_log_in_with_any_password(api_client):
    service = user_service_account()

    for password in ("", "!", service.password):
        response = api_client.post("/api/v1/auth/token/", {"username": service.username, "password": password or "x"})
        assert response.status_code in (400, 401), response.content
