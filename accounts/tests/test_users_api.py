"""Your profile (/users/me/), password change, and the staff-only user list."""

import pytest

from accounts.models import User
from accounts.tests.factories import UserFactory
from conftest import assert_error

pytestmark = pytest.mark.django_db

ME = "/api/v1/users/me/"
PASSWORD = "/api/v1/users/me/password/"
USERS = "/api/v1/users/"
TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"

NEW_PASSWORD = "quartz-meadow-lantern-58"


def profile(user) -> dict:
    """The stored profile fields, to prove a refused request changed nothing."""
    user.refresh_from_db()
    return {
        name: getattr(user, name)
        for name in (
            "username",
            "email",
            "first_name",
            "last_name",
            "is_staff",
            "password",
        )
    }


# --- GET / PATCH /users/me/ -----------------------------------------------------------


def test_get_me(user_client, user):
    response = user_client.get(ME)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == user.pk
    assert body["username"] == user.username
    assert body["email"] == user.email
    assert body["is_staff"] is False
    assert "password" not in body


def test_patch_me_changes_names_and_asks_for_the_email(user_client, user, mailoutbox):
    """A new address is pending until verified (test_email_verification.py)."""
    old = user.email

    response = user_client.patch(
        ME,
        {"first_name": "Grace", "last_name": "Hopper", "email": " Grace@Example.COM "},
    )

    assert response.status_code == 200, response.content
    assert (response.json()["email"], response.json()["pending_email"]) == (old, "grace@example.com")
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Grace", "Hopper")
    assert (user.email, user.pending_email) == (old, "grace@example.com")
    assert [m.to for m in mailoutbox] == [["grace@example.com"]]


def test_patch_me_to_my_own_verified_email_in_another_case(user_client, user, mailoutbox):
    response = user_client.patch(ME, {"email": user.email.upper()})

    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.email == user.email.lower() and user.pending_email is None
    assert mailoutbox == []


def test_patch_me_username(user_client, user, password):
    response = user_client.patch(ME, {"username": "grace.hopper", "current_password": password})

    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.username == "grace.hopper"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("is_staff", True),
        ("id", 999),
        ("date_joined", "2000-01-01T00:00:00Z"),
        ("last_login", "2000-01-01T00:00:00Z"),
    ],
)
def test_patch_me_read_only_field_is_refused(user_client, user, field, value):
    before = profile(user)

    response = user_client.patch(ME, {field: value, "first_name": "Sneaky"})

    body = assert_error(response, 400, code="invalid", field=field)
    assert "read-only" in body["fields"][field][0]
    assert profile(user) == before
    assert User.objects.filter(pk=user.pk).exists()
    assert not User.objects.filter(pk=999).exists()


@pytest.mark.parametrize("field", ["is_superuser", "password", "nickname"])
def test_patch_me_unknown_field_is_refused(user_client, user, field):
    before = profile(user)

    response = user_client.patch(ME, {field: "x", "first_name": "Sneaky"})

    assert_error(response, 400, code="invalid", field=field)
    assert profile(user) == before


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_patch_me_to_a_taken_email_is_refused(user_client, user, other_user, case):
    before = profile(user)

    response = user_client.patch(ME, {"email": case(other_user.email)})

    assert_error(response, 400, code="duplicate", field="email")
    assert profile(user) == before


def test_patch_me_to_a_taken_username_is_refused(user_client, user, other_user, password):
    before = profile(user)

    response = user_client.patch(ME, {"username": other_user.username.upper(), "current_password": password})

    assert_error(response, 400, code="duplicate", field="username")
    assert profile(user) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", ""),
        ("email", None),
        ("username", "grace hopper"),
        ("username", "grace/hopper"),
        ("username", ""),
        ("username", "g" * 151),
        ("first_name", "x" * 151),
    ],
)
def test_patch_me_invalid_value_is_refused(user_client, user, field, value):
    before = profile(user)

    response = user_client.patch(ME, {field: value})

    assert_error(response, 400, code="invalid", field=field)
    assert profile(user) == before


def test_patch_me_anonymous(api_client, user):
    before = profile(user)

    response = api_client.patch(ME, {"first_name": "Anon"})

    assert_error(response, 401, code="not_authenticated")
    assert profile(user) == before


def test_me_does_not_allow_put_or_delete(user_client, user):
    assert_error(user_client.put(ME, {"first_name": "X"}), 405, code="method_not_allowed")
    assert_error(user_client.delete(ME), 405, code="method_not_allowed")
    assert User.objects.filter(pk=user.pk).exists()


# --- POST /users/me/password/ ---------------------------------------------------------


def test_change_password(api_client, user, password, login, bearer_client):
    tokens = login(user.username, password)
    other_session = login(user.username, password)
    rotated = api_client.post(REFRESH, {"refresh": other_session["refresh"]}).json()

    response = bearer_client(tokens["access"]).post(PASSWORD, {"old_password": password, "new_password": NEW_PASSWORD})

    assert response.status_code == 204, response.content
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    old_login = api_client.post(TOKEN, {"username": user.username, "password": password})
    assert_error(old_login, 401, code="authentication_failed")
    new_login = api_client.post(TOKEN, {"username": user.username, "password": NEW_PASSWORD})
    assert new_login.status_code == 200, new_login.content
    # Every refresh token issued before the change is revoked, rotated ones included.
    for refresh in (tokens["refresh"], rotated["refresh"]):
        refused = api_client.post(REFRESH, {"refresh": refresh})
        assert_error(refused, 401, code="token_not_valid")
    fresh = api_client.post(REFRESH, {"refresh": new_login.json()["refresh"]})
    assert fresh.status_code == 200, fresh.content
    # Access tokens issued before the change stop working at once (CHECK_REVOKE_TOKEN).
    assert_error(bearer_client(tokens["access"]).get("/api/v1/users/me/"), 401)
    assert bearer_client(new_login.json()["access"]).get("/api/v1/users/me/").status_code == 200


def test_change_password_leaves_other_users_signed_in(api_client, user_client, other_user, password, login):
    others = login(other_user.username, password)

    response = user_client.post(PASSWORD, {"old_password": password, "new_password": NEW_PASSWORD})

    assert response.status_code == 204, response.content
    assert api_client.post(REFRESH, {"refresh": others["refresh"]}).status_code == 200


def test_change_password_with_a_wrong_old_password(user_client, user, password, login):
    tokens = login(user.username, password)
    before = profile(user)

    response = user_client.post(PASSWORD, {"old_password": "not-my-password-9", "new_password": NEW_PASSWORD})

    assert_error(response, 400, code="wrong_password", field="old_password")
    assert profile(user) == before
    assert user.check_password(password)
    assert user_client.post(REFRESH, {"refresh": tokens["refresh"]}).status_code == 200


@pytest.mark.parametrize("weak", ["k7#pQ2", "password123", "8209347615"])
def test_change_password_to_a_weak_password(user_client, user, password, weak):
    before = profile(user)

    response = user_client.post(PASSWORD, {"old_password": password, "new_password": weak})

    assert_error(response, 400, code="weak_password", field="new_password")
    assert profile(user) == before


def test_change_password_to_something_like_the_username(user_client, user, password):
    response = user_client.post(PASSWORD, {"old_password": password, "new_password": f"{user.username}-1"})

    assert_error(response, 400, code="weak_password", field="new_password")
    user.refresh_from_db()
    assert user.check_password(password)


@pytest.mark.parametrize(
    "data",
    [
        {"old_password": "correct-horse-battery-staple-42"},
        {"new_password": NEW_PASSWORD},
        {
            "old_password": "correct-horse-battery-staple-42",
            "new_password": NEW_PASSWORD,
            "x": 1,
        },
    ],
)
def test_change_password_bad_input(user_client, user, password, data):
    response = user_client.post(PASSWORD, data)

    assert_error(response, 400, code="invalid")
    user.refresh_from_db()
    assert user.check_password(password)


def test_change_password_anonymous(api_client, user, password):
    response = api_client.post(PASSWORD, {"old_password": password, "new_password": NEW_PASSWORD})

    assert_error(response, 401, code="not_authenticated")
    user.refresh_from_db()
    assert user.check_password(password)


# --- staff: GET /users/ and /users/{id}/ ----------------------------------------------


def test_staff_lists_users(staff_client, staff_user, user, other_user):
    response = staff_client.get(USERS)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [row["id"] for row in body["results"]] == sorted([staff_user.pk, user.pk, other_user.pk])
    assert all("password" not in row for row in body["results"])


def test_staff_list_pages_and_filters(staff_client, staff_user):
    UserFactory.create_batch(3)

    first = staff_client.get(USERS, {"page_size": 2})
    assert first.status_code == 200, first.content
    assert len(first.json()["results"]) == 2
    second = staff_client.get(first.json()["next"])
    assert len(second.json()["results"]) == 2
    assert second.json()["next"] is None

    staff_only = staff_client.get(USERS, {"is_staff": "true"})
    assert [row["id"] for row in staff_only.json()["results"]] == [staff_user.pk]


def test_staff_searches_users(staff_client, user, other_user):
    response = staff_client.get(USERS, {"search": other_user.username})

    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [other_user.pk]


def test_staff_gets_a_user(staff_client, user):
    response = staff_client.get(f"{USERS}{user.pk}/")

    assert response.status_code == 200, response.content
    assert response.json()["username"] == user.username


@pytest.mark.parametrize("path", ["999999/", "not-a-number/"])
def test_staff_gets_an_unknown_user(staff_client, staff_user, path):
    response = staff_client.get(f"{USERS}{path}")

    assert_error(response, 404, code="not_found")


def test_non_staff_cannot_list_users(user_client):
    assert_error(user_client.get(USERS), 403, code="permission_denied")


def test_non_staff_cannot_get_a_user(user_client, user, other_user):
    assert_error(user_client.get(f"{USERS}{other_user.pk}/"), 403, code="permission_denied")
    assert_error(user_client.get(f"{USERS}{user.pk}/"), 403, code="permission_denied")


def test_anonymous_cannot_list_or_get_users(api_client, user):
    assert_error(api_client.get(USERS), 401, code="not_authenticated")
    assert_error(api_client.get(f"{USERS}{user.pk}/"), 401, code="not_authenticated")


def test_staff_with_a_bearer_token(staff_user, password, login, bearer_client):
    access = login(staff_user.username, password)["access"]

    response = bearer_client(access).get(USERS)

    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [staff_user.pk]


def test_users_cannot_be_created_or_deleted_through_the_api(staff_client, user):
    created = staff_client.post(USERS, {"username": "x", "email": "x@example.com"})
    deleted = staff_client.delete(f"{USERS}{user.pk}/")

    assert_error(created, 405, code="method_not_allowed")
    assert_error(deleted, 405, code="method_not_allowed")
    assert User.objects.filter(pk=user.pk).exists()
    assert not User.objects.filter(username="x").exists()
