"""Users, and JWTs in the states the auth tests need (expired, tampered with)."""

import base64
import json
from datetime import timedelta

import factory
from factory.django import DjangoModelFactory
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    # A settled account: its address was verified (tests of unverified addresses say so).
    email_verified = True
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery-staple-42")

    # A factory_boy hook: ``obj`` is the built instance (saved once, after set_password).
    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


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
