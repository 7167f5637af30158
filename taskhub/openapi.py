"""OpenAPI helpers: the shared error body, documented once and referenced by every endpoint, and
the errors every operation can answer whatever its view declares (``AutoSchema``)."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from .serializers import StrictFieldsMixin

# What a string the server takes matches: no NUL character (``taskhub.middleware`` refuses one in a
# query parameter, DRF's CharField one in a body). ECMA-262 and Python read ``\x00`` alike.
NO_NUL_PATTERN = "^[^\\x00]*$"

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
    413: "The request is too large (body over DATA_UPLOAD_MAX_MEMORY_SIZE, or too many fields).",
    415: "The body is not JSON (Content-Type: application/json).",
    422: "The Idempotency-Key was used with a different request body.",
    429: "Too many requests: a rate throttle, or a job quota (`quota_active_jobs`, `quota_per_minute`; "
    "the message names the limit, `Retry-After` says when a per-minute slot frees).",
    503: "A dependency is down: the database out of reach is `database_unavailable` (try again after "
    "`Retry-After` seconds); nothing the request would have written is half-written.",
}


def ERRORS(*codes: int) -> dict[int, OpenApiResponse]:  # noqa: N802 - reads like a constant in decorators
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in codes}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, plus the errors any request to the operation can get, which no
    view declares: 400 (a NUL in any query parameter, ``taskhub.middleware``), 401 (a bad token,
    wherever a view authenticates), 404 (a path parameter that names nothing), 429 (the default
    throttles), 503 (the database out of reach, ``taskhub.errors``), and for a request body 413 (too
    large) and 415 (not JSON). Endpoints added later get
    them too; what a view declares itself (``ERRORS``) is kept."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in sorted(self._common_error_codes()):
            if str(code) not in responses:
                response = OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code])
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return responses

    def _map_basic_serializer(self, serializer, direction):
        """A request body says what the server refuses: keys it does not know (``StrictFieldsMixin``:
        ``additionalProperties: false``) and NUL characters in its strings (a ``pattern``)."""
        schema = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return schema
        if isinstance(serializer, StrictFieldsMixin):
            schema["additionalProperties"] = False
        for name, field in serializer.fields.items():
            plain_string = isinstance(field, serializers.CharField) and not isinstance(
                field, serializers.ChoiceField | serializers.UUIDField
            )
            prop = schema.get("properties", {}).get(name)
            if plain_string and prop and prop.get("type") == "string" and not {"pattern", "enum", "format"} & set(prop):
                prop["pattern"] = NO_NUL_PATTERN
        return schema

    def _common_error_codes(self) -> set[int]:
        codes = {400, 503}
        if self.view.get_authenticators():
            codes.add(401)
        if "{" in self.path:
            codes.add(404)
        if self.view.get_throttles():
            codes.add(429)
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            codes |= {413, 415}
        return codes


ALIAS_PREFIX = "/api/v1/tasks/"
ALIAS_TAG = "tasks (spec aliases)"


def mark_spec_aliases(result: dict, generator, request, public) -> dict:
    """A postprocessing hook: ``/api/v1/tasks/...``, the original spec's paths, serve the same
    operations as ``/api/v1/jobs/...``. They keep working; the document marks them deprecated and
    tags them apart, so Swagger lists the jobs operations once and the aliases in their own group."""
    for path, item in result.get("paths", {}).items():
        if not path.startswith(ALIAS_PREFIX):
            continue
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                operation["deprecated"] = True
                operation["tags"] = [ALIAS_TAG]
                jobs_path = "/api/v1/jobs/" + path.removeprefix(ALIAS_PREFIX)
                note = f"Deprecated alias of `{method.upper()} {jobs_path}` (the original spec's path); use that."
                operation["description"] = f"{note}\n\n{operation.get('description', '')}".rstrip()
    tags = [tag for tag in result.get("tags", []) if tag.get("name") != ALIAS_TAG]
    tags.append(
        {
            "name": ALIAS_TAG,
            "description": "The original spec's /api/v1/tasks/ paths: deprecated "
            "aliases of /api/v1/jobs/, kept working.",
        }
    )
    result["tags"] = tags
    return result


def declare_nul_refusal(result: dict, generator, request, public) -> dict:
    """A postprocessing hook: every free-text query parameter excludes NUL (``taskhub.middleware``
    answers a query parameter with one with a 400, whatever the path), so the document says so."""
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query":
                    continue
                schema = parameter.get("schema", {})
                target = schema.get("items", {}) if schema.get("type") == "array" else schema
                if target.get("type") == "string" and not {"pattern", "enum", "format"} & set(target):
                    target["pattern"] = NO_NUL_PATTERN
    return result


class StrictJWTScheme(SimpleJWTScheme):
    """The bearer scheme for accounts' stricter JWT authentication (simplejwt's, documented the same)."""

    target_class = "accounts.authentication.StrictJWTAuthentication"
