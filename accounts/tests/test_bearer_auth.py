"""Requests authenticated with ``Authorization: Bearer <access>``: what is accepted, what is a 401
(expired, tampered, a refresh token, a deactivated user, a user claim that is not an id), and the
user lookup behind it."""

import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from accounts.tests.factories import UserFactory, expired_access, tampered
from conftest import assert_error

pytestmark = pytest.mark.django_db

REFRESH = "/api/v1/auth/token/refresh/"
ME = "/api/v1/users/me/"


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
