"""Found item 3 (Security II), the account side: an address is the user's only once they prove
they read it. PATCH /users/me/ {"email"} stores it as pending and mails a token to it; POST
/users/me/email/verify/ {"token"} by the same user makes it ``email`` (verified)."""

import re
import time

import pytest
from django.core.signing import TimestampSigner, b62_encode

from accounts.services import EMAIL_TOKEN_SALT
from accounts.tests.factories import UserFactory
from conftest import assert_error

pytestmark = pytest.mark.django_db

ME = "/api/v1/users/me/"
VERIFY = "/api/v1/users/me/email/verify/"
REGISTER = "/api/v1/auth/register/"


def token_in(message) -> str:
    return re.search(r"^(\S{40,})$", message.body, re.MULTILINE).group(1)


def test_an_address_change_is_pending_until_verified(user_client, user, mailoutbox):
    old = user.email

    response = user_client.patch(ME, {"email": " Grace@Elsewhere.example "})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["email"], body["pending_email"]) == (old, "grace@elsewhere.example")
    user.refresh_from_db()
    assert (user.email, user.pending_email) == (old, "grace@elsewhere.example")
    [message] = mailoutbox
    assert message.to == ["grace@elsewhere.example"]
    assert "http://testserver/api/v1/users/me/email/verify/" in message.body

    verified = user_client.post(VERIFY, {"token": token_in(message)})

    assert verified.status_code == 200, verified.content
    user.refresh_from_db()
    assert (user.email, user.pending_email, user.email_verified) == ("grace@elsewhere.example", None, True)
    assert user.email_verified_at is not None
    assert verified.json()["email_verified"] is True


def test_the_token_works_only_for_the_user_it_was_issued_to(user_client, user, other_user, other_client, mailoutbox):
    user_client.patch(ME, {"email": "grace@elsewhere.example"})
    token = token_in(mailoutbox[0])

    response = other_client.post(VERIFY, {"token": token})

    assert_error(response, 400, code="invalid_token", field="token")
    other_user.refresh_from_db()
    user.refresh_from_db()
    assert "grace@elsewhere.example" not in (other_user.email, user.email)


def test_a_forged_or_expired_or_superseded_token_is_refused(user_client, user, mailoutbox, settings):
    assert_error(user_client.post(VERIFY, {"token": "not-a-token"}), 400, code="invalid_token", field="token")
    user_client.patch(ME, {"email": "first@elsewhere.example"})
    first = token_in(mailoutbox[0])
    user_client.patch(ME, {"email": "second@elsewhere.example"})
    assert_error(user_client.post(VERIFY, {"token": first}), 400, code="token_superseded", field="token")

    class Yesterday(TimestampSigner):
        def timestamp(self):
            return b62_encode(int(time.time()) - settings.EMAIL_VERIFICATION_MAX_AGE - 1)

    stale = Yesterday(salt=EMAIL_TOKEN_SALT).sign_object({"user": user.pk, "email": "second@elsewhere.example"})
    assert_error(user_client.post(VERIFY, {"token": stale}), 400, code="token_expired", field="token")
    user.refresh_from_db()
    assert user.email != "second@elsewhere.example"


def test_the_default_token_lifetime_is_a_day(settings):
    assert settings.EMAIL_VERIFICATION_MAX_AGE == 24 * 3600


def test_verify_bad_input_and_anonymous(api_client, user_client):
    assert_error(user_client.post(VERIFY, {}), 400, code="invalid", field="token")
    assert_error(user_client.post(VERIFY, {"token": "x", "email": "a@b.c"}), 400, code="invalid", field="email")
    assert_error(api_client.post(VERIFY, {"token": "x"}), 401, code="not_authenticated")


def test_an_address_taken_since_the_request_is_refused_at_verification(user_client, user, mailoutbox):
    user_client.patch(ME, {"email": "grace@elsewhere.example"})
    UserFactory(email="grace@elsewhere.example")

    response = user_client.post(VERIFY, {"token": token_in(mailoutbox[0])})

    assert_error(response, 400, code="duplicate", field="email")


def test_registration_starts_unverified_and_mails_a_token(api_client, mailoutbox):
    from accounts.models import User

    response = api_client.post(
        REGISTER, {"username": "ada", "email": "ada@example.com", "password": "plum-orbit-cascade-71"}
    )

    assert response.status_code == 202, response.content
    user = User.objects.get(username="ada")
    assert (user.email, user.email_verified) == ("ada@example.com", False)
    [message] = mailoutbox
    assert message.to == ["ada@example.com"]
    access = api_client.post("/api/v1/auth/token/", {"username": "ada", "password": "plum-orbit-cascade-71"})
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access.json()['access']}")
    assert api_client.post(VERIFY, {"token": token_in(message)}).status_code == 200
    user.refresh_from_db()
    assert user.email_verified
