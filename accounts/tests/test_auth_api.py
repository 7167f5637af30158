"""Registration and JWT auth through HTTP: register, login, refresh, verify, logout."""

import base64
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from accounts.tests.factories import UserFactory
from conftest import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
VERIFY = "/api/v1/auth/token/verify/"
LOGOUT = "/api/v1/auth/logout/"
ME = "/api/v1/users/me/"

STRONG_PASSWORD = "plum-orbit-cascade-71"


def signup(**overrides) -> dict:
    return {
        "username": "ada",
        "email": "ada@example.com",
        "password": STRONG_PASSWORD,
        **overrides,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tampered(token: str, **claims) -> str:
    """The token with its payload claims changed and the original signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    forged = _b64(json.dumps(decoded).encode())
    assert forged != payload
    return f"{header}.{forged}.{signature}"


def expired_access(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    return str(token)


# --- register -------------------------------------------------------------------------


def test_register_creates_the_user(api_client):
    response = api_client.post(REGISTER, signup(email="Ada@Example.com", first_name="Ada"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "ada"
    assert body["email"] == "ada@example.com"
    assert body["is_staff"] is False
    assert "password" not in body
    user = User.objects.get(username="ada")
    assert user.pk == body["id"]
    assert user.email == "ada@example.com"
    assert user.first_name == "Ada"
    assert user.check_password(STRONG_PASSWORD)
    assert not user.is_staff
    assert not user.is_superuser


def test_registered_user_can_log_in(api_client):
    api_client.post(REGISTER, signup())

    response = api_client.post(TOKEN, {"username": "ada", "password": STRONG_PASSWORD})

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"access", "refresh"}


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_register_without_a_required_field_is_refused(api_client, missing):
    data = signup()
    del data[missing]

    response = api_client.post(REGISTER, data)

    assert_error(response, 400, code="invalid", field=missing)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("extra", "value"),
    [("is_staff", True), ("is_superuser", True), ("nickname", "ada"), ("id", 1)],
)
def test_register_with_an_unknown_field_is_refused(api_client, extra, value):
    response = api_client.post(REGISTER, signup(**{extra: value}))

    assert_error(response, 400, code="invalid", field=extra)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("username", "ada lovelace"),
        ("username", "ada/lovelace"),
        ("username", "a" * 151),
    ],
)
def test_register_with_an_invalid_value_is_refused(api_client, field, value):
    response = api_client.post(REGISTER, signup(**{field: value}))

    assert_error(response, 400, code="invalid", field=field)
    assert not User.objects.exists()


@pytest.mark.parametrize("username", ["taken", "TAKEN", "Taken"])
def test_register_with_a_taken_username_is_refused(api_client, username):
    User.objects.create_user("taken", "first@example.com", STRONG_PASSWORD)

    response = api_client.post(REGISTER, signup(username=username))

    body = assert_error(response, 400, code="duplicate", field="username")
    assert "username" in body["message"]
    assert User.objects.count() == 1


@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@Example.COM"])
def test_register_with_a_taken_email_is_refused(api_client, email):
    User.objects.create_user("first", "taken@example.com", STRONG_PASSWORD)

    response = api_client.post(REGISTER, signup(email=email))

    body = assert_error(response, 400, code="duplicate", field="email")
    assert "email" in body["message"]
    assert User.objects.count() == 1


def test_the_database_refuses_an_email_that_differs_only_in_case(user):
    """Users made outside the API (admin, createsuperuser) are held to it too."""
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(email=user.email.upper())


@pytest.mark.parametrize(
    "weak",
    [
        "k7#pQ2",  # too short
        "password123",  # too common
        "8209347615",  # entirely numeric
        "ada-lovelace",  # too similar to the username
    ],
)
def test_register_with_a_weak_password_is_refused(api_client, weak):
    response = api_client.post(REGISTER, signup(username="ada-lovelace", password=weak))

    body = assert_error(response, 400, code="weak_password", field="password")
    assert body["message"].startswith("password: ")
    assert not User.objects.exists()


def test_register_when_registration_is_closed(api_client, settings):
    settings.REGISTRATION_OPEN = False

    response = api_client.post(REGISTER, signup())

    assert_error(response, 403, code="registration_closed")
    assert not User.objects.exists()


def test_register_is_throttled(api_client, throttle_rates):
    throttle_rates(register="2/hour")
    for number in range(2):
        response = api_client.post(REGISTER, signup(username=f"u{number}", email=f"u{number}@example.com"))
        assert response.status_code == 201, response.content

    response = api_client.post(REGISTER, signup())

    assert_error(response, 429, code="throttled")
    assert User.objects.count() == 2


def test_register_with_malformed_json(api_client):
    response = api_client.post(REGISTER, data="{not json", content_type="application/json")

    assert_error(response, 400, code="parse_error")
    assert not User.objects.exists()


# --- login ----------------------------------------------------------------------------


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


def test_behind_one_proxy_the_address_it_appends_is_the_client(api_client, user, password, throttle_rates):
    throttle_rates(login="2/min")
    wrong = {"username": user.username, "password": "guess-number-1"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        for forged in ("203.0.113.1", "203.0.113.2"):  # the client's forged part varies, the proxy's does not
            api_client.post(TOKEN, wrong, HTTP_X_FORWARDED_FOR=f"{forged}, 192.0.2.10")
        blocked = api_client.post(TOKEN, wrong, HTTP_X_FORWARDED_FOR="203.0.113.3, 192.0.2.10")
        other_client = api_client.post(TOKEN, wrong, HTTP_X_FORWARDED_FOR="203.0.113.3, 192.0.2.99")
    assert_error(blocked, 429, code="throttled")
    assert_error(other_client, 401, code="authentication_failed")


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


# --- bearer authentication ------------------------------------------------------------


def test_me_with_a_bearer_token(user, password, login, bearer_client):
    access = login(user.username, password)["access"]

    response = bearer_client(access).get(ME)

    assert response.status_code == 200, response.content
    assert response.json()["id"] == user.pk


def test_me_without_credentials(api_client, db):
    response = api_client.get(ME)

    assert_error(response, 401, code="not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_me_with_an_expired_access_token(user, bearer_client):
    response = bearer_client(expired_access(user)).get(ME)

    assert_error(response, 401, code="token_not_valid")


def test_me_with_a_tampered_access_token(user, staff_user, password, login, bearer_client):
    access = login(user.username, password)["access"]

    response = bearer_client(tampered(access, user_id=str(staff_user.pk))).get(ME)

    assert_error(response, 401, code="token_not_valid")


def test_me_with_a_refresh_token_as_bearer(user, password, login, bearer_client):
    refresh = login(user.username, password)["refresh"]

    response = bearer_client(refresh).get(ME)

    assert_error(response, 401, code="token_not_valid")


def test_me_with_the_token_of_a_deactivated_user(user, password, login, bearer_client):
    access = login(user.username, password)["access"]
    user.is_active = False
    user.save()

    response = bearer_client(access).get(ME)

    assert_error(response, 401)


# --- tokens whose signature is valid but whose user claim is not an id -----------------


BAD_USER_IDS = [[1], "1 OR 1=1", "a\x00b", {"id": 1}, 1.5, True, None, -1, 10**30, "9" * 30, ""]


def signed_with_user_id(token_class, user, user_id):
    """A token signed with the server's key (as a leaked key or a bug elsewhere could produce)."""
    token = token_class.for_user(user)
    token["user_id"] = user_id
    return str(token)


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
def test_an_access_token_whose_user_id_is_not_an_id_is_a_401(api_client, user, user_id):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {signed_with_user_id(AccessToken, user, user_id)}")
    response = api_client.get(ME)
    assert_error(response, 401, "token_not_valid")
    assert "user identification" in response.json()["message"]


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
def test_a_refresh_token_whose_user_id_is_not_an_id_is_a_401(api_client, user, user_id):
    response = api_client.post(REFRESH, {"refresh": signed_with_user_id(RefreshToken, user, user_id)})
    assert_error(response, 401, "token_not_valid")


def test_a_user_id_given_as_digits_still_signs_in(api_client, user):
    """Other simplejwt versions write the id as a string: the digits of the user's id are accepted."""
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {signed_with_user_id(AccessToken, user, str(user.pk))}")
    assert api_client.get(ME).json()["username"] == user.username


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ("deactivate", "user_inactive", "inactive"),
        ("delete", "user_not_found", "not found"),
        ("new password", "password_changed", "password has been changed"),
    ],
)
def test_an_access_token_stops_working_when_its_user_changes(api_client, user, change, code, words):
    """What simplejwt's own lookup refused, the project's (accounts.selectors.user_by_id) refuses."""
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    assert api_client.get("/api/v1/jobs/").status_code == 200
    if change == "deactivate":
        user.is_active = False
        user.save()
    elif change == "delete":
        user.delete()
    else:
        user.set_password("another-correct-horse-battery-9")
        user.save()
    body = assert_error(api_client.get("/api/v1/jobs/"), 401, code=code)
    assert words in body["message"], body


def test_the_users_lookup_makes_the_user_the_orm_makes(db):
    """``user_by_id`` (SQL written once on PostgreSQL) returns the same User, field for field."""
    from django.utils import timezone

    from accounts.selectors import user_by_id

    user = UserFactory(first_name="Ada", last_name="Lovelace", is_staff=True, max_active_jobs=7, max_jobs_per_minute=0)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    fast, orm = user_by_id(user.pk), User.objects.get(pk=user.pk)
    fields = [field.attname for field in User._meta.concrete_fields]
    assert {name: getattr(fast, name) for name in fields} == {name: getattr(orm, name) for name in fields}
    assert fast._state.adding is False and fast._state.db == "default"
    assert user_by_id(user.pk + 1000) is None
