"""Registration through HTTP (POST /api/v1/auth/register/): the user made, and every refusal.

Every sign-up that passes the input checks is answered 202 with the same body, made or not (a taken
username or address is told by mail: test_register_enumeration.py). ``people()`` leaves out the
service account, which migration 0006 makes."""

import pytest
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.tests.factories import UserFactory
from conftest import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"

STRONG_PASSWORD = "plum-orbit-cascade-71"


def people():
    return User.objects.filter(is_service_account=False)


def signup(**overrides) -> dict:
    return {
        "username": "ada",
        "email": "ada@example.com",
        "password": STRONG_PASSWORD,
        **overrides,
    }


def test_register_creates_the_user(api_client):
    response = api_client.post(REGISTER, signup(email="Ada@Example.com", first_name="Ada"))

    assert response.status_code == 202, response.content
    assert set(response.json()) == {"detail"}
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.com"
    assert not user.email_verified
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
    assert not people().exists()


@pytest.mark.parametrize(
    ("extra", "value"),
    [("is_staff", True), ("is_superuser", True), ("nickname", "ada"), ("id", 1)],
)
def test_register_with_an_unknown_field_is_refused(api_client, extra, value):
    response = api_client.post(REGISTER, signup(**{extra: value}))

    assert_error(response, 400, code="invalid", field=extra)
    assert not people().exists()


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
    assert not people().exists()


@pytest.mark.parametrize("username", ["taken", "TAKEN", "Taken", "t\u0430ken"])
def test_register_with_a_taken_username_makes_no_account(api_client, username, mailoutbox):
    """Answered as a success (no 400 that would tell an anonymous caller the name exists); the mail
    to the address given says the name is not available."""
    User.objects.create_user("taken", "first@example.com", STRONG_PASSWORD)

    response = api_client.post(REGISTER, signup(username=username))

    assert response.status_code == 202, response.content
    assert people().count() == 1
    assert [(m.to, m.subject) for m in mailoutbox] == [(["ada@example.com"], "taskhub: that username is not available")]


@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@Example.COM"])
def test_register_with_a_taken_email_makes_no_account(api_client, email, mailoutbox):
    """Answered as a success; the address's owner gets a mail saying someone tried to sign up."""
    User.objects.create_user("first", "taken@example.com", STRONG_PASSWORD)

    response = api_client.post(REGISTER, signup(email=email))

    assert response.status_code == 202, response.content
    assert people().count() == 1
    assert [m.to for m in mailoutbox] == [["taken@example.com"]]
    assert "someone tried to sign up" in mailoutbox[0].subject


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
    assert not people().exists()


def test_register_when_registration_is_closed(api_client, settings):
    settings.REGISTRATION_OPEN = False

    response = api_client.post(REGISTER, signup())

    assert_error(response, 403, code="registration_closed")
    assert not people().exists()


def test_register_is_throttled(api_client, throttle_rates):
    throttle_rates(register="2/hour")
    for number in range(2):
        response = api_client.post(REGISTER, signup(username=f"u{number}", email=f"u{number}@example.com"))
        assert response.status_code == 202, response.content

    response = api_client.post(REGISTER, signup())

    assert_error(response, 429, code="throttled")
    assert people().count() == 2


def test_register_with_malformed_json(api_client):
    response = api_client.post(REGISTER, data="{not json", content_type="application/json")

    assert_error(response, 400, code="parse_error")
    assert not people().exists()
