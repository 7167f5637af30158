"""Found item 16 (registration part): an anonymous caller cannot tell a taken username or
e-mail address from a free one. Every sign-up that passes the input checks gets the same 202;
what happened is said in a mail, to the address given or to the owner of a taken address."""

import pytest

from accounts.models import User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
STRONG = "plum-orbit-cascade-71"


def answer(response) -> tuple[int, dict]:
    return response.status_code, response.json()


def test_taken_username_taken_email_and_free_ones_get_the_same_answer(api_client, mailoutbox):
    UserFactory(username="taken", email="taken@example.com")

    free = answer(api_client.post(REGISTER, {"username": "fresh", "email": "fresh@example.com", "password": STRONG}))
    name = answer(api_client.post(REGISTER, {"username": "TAKEN", "email": "new@example.com", "password": STRONG}))
    mail = answer(api_client.post(REGISTER, {"username": "other", "email": "Taken@Example.com", "password": STRONG}))
    look = answer(api_client.post(REGISTER, {"username": "t\u0430ken", "email": "n2@example.com", "password": STRONG}))

    assert free == name == mail == look
    assert free[0] == 202
    assert set(User.objects.filter(is_service_account=False).values_list("username", flat=True)) == {"taken", "fresh"}
    by_address = {message.to[0]: message for message in mailoutbox}
    assert "verify" in by_address["fresh@example.com"].subject
    assert "not available" in by_address["new@example.com"].subject
    assert "someone tried to sign up" in by_address["taken@example.com"].subject
    assert "not available" in by_address["n2@example.com"].subject
