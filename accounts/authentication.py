"""JWT authentication that refuses a token whose user claim is not a user id.

simplejwt looks the claim up as it is: a validly signed token whose ``user_id`` is a list, a
string such as ``"1 OR 1=1"`` or one with a NUL byte made the lookup raise (a 500), and ``True``
or ``1.5`` would be read as user 1. Only an int (or the digits of one) within the id column's
range names a user; anything else is the 401 of any other bad token.
"""

from typing import Any

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings

MAX_ID = 2**63 - 1  # bigint


def user_id_from_claims(claims: Any) -> int:
    """The user id a token names; InvalidToken when it names none."""
    value = claims.get(api_settings.USER_ID_CLAIM) if hasattr(claims, "get") else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidToken("Token contained no recognizable user identification")
    return value


class StrictJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):
        user_id_from_claims(validated_token)
        return super().get_user(validated_token)
