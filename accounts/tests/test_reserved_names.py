"""Found item 11 (Security II) and the reserved names: nobody registers or renames themselves to a
reserved name (the service account's, admin-like ones: accounts/usernames.py) or to a look-alike
of it or of another user's name (NFKC + casefold + a confusable skeleton), and a rename needs the
current password."""

import pytest

from accounts.models import User
from accounts.tests.factories import UserFactory
from conftest import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
ME = "/api/v1/users/me/"
STRONG_PASSWORD = "plum-orbit-cascade-71"


@pytest.mark.parametrize(
    "name",
    [
        "django-tasks",
        "admin",
        "Administrator",
        "ROOT",
        "system",
        "support",
        "staff",
        "taskhub",
        "\u0430dmin",  # Cyrillic a
        "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth "admin"
        "adm\u0456n",  # Cyrillic i
        "r\u03bf\u03bft",  # Greek omicrons
    ],
)
def test_a_reserved_name_or_its_lookalike_cannot_be_registered(api_client, name):
    response = api_client.post(REGISTER, {"username": name, "email": "x@example.com", "password": STRONG_PASSWORD})

    body = assert_error(response, 400, code="reserved_username", field="username")
    assert "reserved" in body["message"]
    assert not User.objects.filter(is_service_account=False).exists()


def test_the_cyrillic_rename_to_admin_is_refused(user_client, user, password):
    """The reproduction: PATCH /users/me/ {"username": "\u0430dmin"} (a Cyrillic a, U+0430)."""
    response = user_client.patch(ME, {"username": "\u0430dmin", "current_password": password})

    assert_error(response, 400, code="reserved_username", field="username")
    user.refresh_from_db()
    assert user.username != "\u0430dmin"


def test_a_rename_to_a_lookalike_of_another_user_is_refused(user_client, user, password):
    UserFactory(username="grace")

    response = user_client.patch(ME, {"username": "gr\u0430ce", "current_password": password})

    assert_error(response, 400, code="duplicate", field="username")
    user.refresh_from_db()
    assert user.username != "gr\u0430ce"


def test_a_rename_without_the_current_password_is_refused(user_client, user):
    before = user.username

    response = user_client.patch(ME, {"username": "grace.hopper"})

    assert_error(response, 400, code="current_password_required", field="current_password")
    user.refresh_from_db()
    assert user.username == before


def test_a_rename_with_a_wrong_current_password_is_refused(user_client, user):
    before = user.username

    response = user_client.patch(ME, {"username": "grace.hopper", "current_password": "not-my-password-9"})

    assert_error(response, 400, code="wrong_password", field="current_password")
    user.refresh_from_db()
    assert user.username == before


def test_a_rename_with_the_current_password(user_client, user, password):
    response = user_client.patch(ME, {"username": "grace.hopper", "current_password": password})

    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.username == "grace.hopper"


def test_keeping_my_own_name_in_another_case_needs_no_lookalike_check_against_myself(user_client, user, password):
    response = user_client.patch(ME, {"username": user.username.upper(), "current_password": password})

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("name", ["adminton", "rooted", "grace", "\u0434\u0430\u0448\u0430"])
def test_ordinary_names_are_not_reserved(api_client, name):
    response = api_client.post(REGISTER, {"username": name, "email": "x@example.com", "password": STRONG_PASSWORD})

    assert response.status_code in (201, 202), response.content
    assert User.objects.filter(username=name).exists()
