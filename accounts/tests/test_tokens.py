"""A JWT pair's life through HTTP: refresh (rotation), verify, logout (revocation)."""

from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.tests.factories import _b64, expired_access, tampered
from conftest import assert_error

pytestmark = pytest.mark.django_db

REFRESH = "/api/v1/auth/token/refresh/"
VERIFY = "/api/v1/auth/token/verify/"
LOGOUT = "/api/v1/auth/logout/"


# --- refresh --------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(api_client, user, password, login):
    old = login(user.username, password)

    response = api_client.post(REFRESH, {"refresh": old["refresh"]})

    assert response.status_code == 200, response.content
    new = response.json()
    assert set(new) == {"access", "refresh"}
    assert new["refresh"] != old["refresh"]
    assert AccessToken(new["access"])["user_id"] == str(user.pk)
    # The new refresh token works once more; the old one is refused from now on.
    assert api_client.post(REFRESH, {"refresh": new["refresh"]}).status_code == 200
    again = api_client.post(REFRESH, {"refresh": old["refresh"]})
    assert_error(again, 401, code="token_not_valid")


def test_refresh_with_an_access_token_is_refused(api_client, user, password, login):
    tokens = login(user.username, password)

    response = api_client.post(REFRESH, {"refresh": tokens["access"]})

    assert_error(response, 401, code="token_not_valid")


def test_refresh_with_a_tampered_token_is_refused(api_client, user, staff_user):
    token = str(RefreshToken.for_user(user))

    response = api_client.post(REFRESH, {"refresh": tampered(token, user_id=str(staff_user.pk))})

    assert_error(response, 401, code="token_not_valid")


def test_refresh_with_an_expired_token_is_refused(api_client, user):
    token = RefreshToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))

    response = api_client.post(REFRESH, {"refresh": str(token)})

    assert_error(response, 401, code="token_not_valid")


def test_refresh_for_a_deactivated_user_is_refused(api_client, user, password, login):
    tokens = login(user.username, password)
    user.is_active = False
    user.save()

    response = api_client.post(REFRESH, {"refresh": tokens["refresh"]})

    assert_error(response, 401)


def test_refresh_for_a_deleted_user_is_refused(api_client, user, password, login):
    tokens = login(user.username, password)
    user.delete()

    response = api_client.post(REFRESH, {"refresh": tokens["refresh"]})

    assert_error(response, 401)


def test_refresh_without_a_token(api_client, db):
    response = api_client.post(REFRESH, {})

    assert_error(response, 400, code="invalid", field="refresh")


# --- verify ---------------------------------------------------------------------------


def test_verify_a_valid_token(api_client, user, password, login):
    tokens = login(user.username, password)

    for token in (tokens["access"], tokens["refresh"]):
        response = api_client.post(VERIFY, {"token": token})
        assert response.status_code == 200, response.content


def test_verify_a_tampered_token(api_client, user, staff_user, password, login):
    access = login(user.username, password)["access"]

    response = api_client.post(VERIFY, {"token": tampered(access, user_id=str(staff_user.pk))})

    assert_error(response, 401, code="token_not_valid")


def test_verify_a_token_with_a_broken_signature(api_client, user, password, login):
    access = login(user.username, password)["access"]
    header, payload, _signature = access.split(".")
    broken = f"{header}.{payload}.{_b64(b'0' * 32)}"

    response = api_client.post(VERIFY, {"token": broken})

    assert_error(response, 401, code="token_not_valid")


def test_verify_an_expired_token(api_client, user):
    response = api_client.post(VERIFY, {"token": expired_access(user)})

    assert_error(response, 401, code="token_not_valid")


@pytest.mark.parametrize("data", [{}, {"token": ""}, {"token": "x", "extra": 1}])
def test_verify_bad_input(api_client, db, data):
    response = api_client.post(VERIFY, data)

    assert_error(response, 400, code="invalid")


# --- logout ---------------------------------------------------------------------------


def test_logout_revokes_the_refresh_token(api_client, user, password, login):
    tokens = login(user.username, password)

    response = api_client.post(LOGOUT, {"refresh": tokens["refresh"]})

    assert response.status_code == 204, response.content
    assert response.content == b""
    refused = api_client.post(REFRESH, {"refresh": tokens["refresh"]})
    assert_error(refused, 401, code="token_not_valid")


def test_logout_twice_is_refused(api_client, user, password, login):
    tokens = login(user.username, password)
    assert api_client.post(LOGOUT, {"refresh": tokens["refresh"]}).status_code == 204

    response = api_client.post(LOGOUT, {"refresh": tokens["refresh"]})

    body = assert_error(response, 401, code="token_not_valid")
    assert body["message"].startswith("refresh: ")


def test_logout_leaves_other_sessions_signed_in(api_client, user, password, login):
    laptop = login(user.username, password)
    phone = login(user.username, password)

    assert api_client.post(LOGOUT, {"refresh": laptop["refresh"]}).status_code == 204

    assert api_client.post(REFRESH, {"refresh": phone["refresh"]}).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"])
def test_logout_with_a_garbage_token(api_client, db, token):
    response = api_client.post(LOGOUT, {"refresh": token})

    assert_error(response, 401, code="token_not_valid")


def test_logout_with_an_access_token(api_client, user, password, login):
    tokens = login(user.username, password)

    response = api_client.post(LOGOUT, {"refresh": tokens["access"]})

    assert_error(response, 401, code="token_not_valid")
    assert api_client.post(REFRESH, {"refresh": tokens["refresh"]}).status_code == 200


@pytest.mark.parametrize("data", [{}, {"refresh": "x", "access": "y"}])
def test_logout_bad_input(api_client, db, data):
    response = api_client.post(LOGOUT, data)

    assert_error(response, 400, code="invalid")
