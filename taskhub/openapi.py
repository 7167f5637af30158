"""OpenAPI helpers: the shared error body, documented once and referenced by every endpoint."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "code": serializers.CharField(
            help_text="Machine-readable error code, e.g. `invalid`, `not_found`, `conflict`."
        ),
        "message": serializers.CharField(help_text="What went wrong, for people; names the field at fault."),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Per-field messages, present when input fields are at fault.",
        ),
    },
)

_DESCRIPTIONS = {
    400: "Invalid input (the message names the field).",
    401: "Not authenticated, or the token is invalid or expired.",
    403: "Not allowed.",
    404: "Not found (or not yours).",
    409: "The object's state does not allow this (e.g. cancel a finished job).",
    413: "The request is too large.",
    422: "The Idempotency-Key was used with a different request body.",
    429: "Too many requests: a rate throttle, or a job quota (`quota_active_jobs`, `quota_per_minute`; "
    "the message names the limit, `Retry-After` says when a per-minute slot frees).",
    503: "A dependency is down.",
}


def ERRORS(*codes: int) -> dict[int, OpenApiResponse]:  # noqa: N802 - reads like a constant in decorators
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in codes}


class StrictJWTScheme(SimpleJWTScheme):
    """The bearer scheme for accounts' stricter JWT authentication (simplejwt's, documented the same)."""

    target_class = "accounts.authentication.StrictJWTAuthentication"
