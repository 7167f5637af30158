"""JWT authentication that refuses a token whose user claim is not a user id.

simplejwt looks the claim up as it is: a validly signed token whose ``user_id`` is a list, a
string such as ``"1 OR 1=1"`` or one with a NUL byte made the lookup raise (a 500), and ``True``
or ``1.5`` would be read as user 1. Only an int (or the digits of one) within the id column's
range names a user; anything else is the 401 of any other bad token.

The lookup is ``accounts.selectors.user_by_id`` (SQL written once on PostgreSQL); the checks after
it are simplejwt's own, with its messages.
"""

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from .selectors import user_by_id

MAX_ID = 2**63 - 1  # bigint


def user_id_from_claims(claims: Any) -> int:
    """The user id a token names; InvalidToken when it names none."""
    value = claims.get(api_settings.USER_ID_CLAIM) if hasattr(claims, "get") else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidToken("Token contained no recognizable user identification")
    return value


def user_may_authenticate(user) -> bool:
    """simplejwt's USER_AUTHENTICATION_RULE: an active person; never the service account."""
    return user is not None and user.is_active and not user.is_service_account


class PersonModelBackend(ModelBackend):
    """Django's password and session backend, refusing the service account (its password is
    unusable anyway; a session made for it by other means does not authenticate either)."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)


class StrictJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):
        """simplejwt's ``get_user`` (same checks, same errors), looking the user up with
        ``user_by_id`` (one statement written once) instead of building ``User.objects.get`` at
        every request."""
        user = user_by_id(user_id_from_claims(validated_token))
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if user.is_service_account:
            raise AuthenticationFailed(_("The service account cannot sign in."), code="service_account")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(_("The user's password has been changed."), code="password_changed")
        return user
