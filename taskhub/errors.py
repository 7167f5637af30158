"""One error shape for the whole API.

Every error answer is ``{"code": "...", "message": "...", "fields": {...}}`` (``fields`` only
when input fields are at fault). Services raise :class:`ApplicationError`; DRF and Django
errors are translated by :func:`exception_handler` so clients never see another shape.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A domain error raised by services: a stable code, a message and an HTTP status."""

    code = "error"
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.fields = fields or {}


class NotFound(ApplicationError):
    code = "not_found"
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(ApplicationError):
    """The object is not in a state that allows the operation (or lost a race)."""

    code = "conflict"
    status_code = status.HTTP_409_CONFLICT


class InvalidInput(ApplicationError):
    code = "invalid"
    status_code = status.HTTP_400_BAD_REQUEST


def error_body(code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail: Any) -> Any:
    """DRF error details to plain strings (lists of messages per field)."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(fields: Any, path: str = "") -> str:
    """The first error as one sentence that names its field, e.g. ``kwargs.seconds: ...``."""
    if isinstance(fields, dict):
        for key, value in fields.items():
            sub = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            if message := _first_message(value, sub):
                return message
        return ""
    if isinstance(fields, list):
        for index, item in enumerate(fields):
            sub = f"{path}[{index}]" if isinstance(item, (dict, list)) else path
            if message := _first_message(item, sub):
                return message
        return ""
    return f"{path}: {fields}" if path else str(fields)


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
}


logger = logging.getLogger(__name__)


def _too_large(exc: Exception) -> tuple[dict[str, Any], int] | None:
    """The 413 body for a request over Django's upload limits, or None for any other error."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = error_body("payload_too_large", f"The request body is larger than the limit of {limit} bytes.")
    elif isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        body = error_body("too_many_fields", f"The request has more than the limit of {limit} fields.")
    else:
        return None
    logger.warning("Refused an oversized request: %s", body["message"])
    return body, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if too_large := _too_large(exc):
        body, status_code = too_large
        return Response(body, status=status_code)
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code, headers=exc.headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields if isinstance(fields, list) else [fields]}
        response.data = error_body("invalid", _first_message(fields) or "Invalid input.", fields)
        return response

    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
    if isinstance(detail, dict):
        # simplejwt's token errors: {"detail": "...", "code": "token_not_valid", "messages": [...]}
        message = str(detail.get("detail", "")) or _first_message(_flatten(detail))
        code = str(detail.get("code", code or "error"))
    else:
        message = str(detail)
        if code is None:
            code = getattr(detail, "code", None) or "error"
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        message = f"Too many requests: try again in {int(exc.wait) + 1} seconds."
    response.data = error_body(code, message)
    return response


def json_400(request, exception=None) -> JsonResponse:
    """Django's 400s outside DRF (e.g. an admin form over the field limit), in the one shape."""
    if too_large := _too_large(exception):
        body, status_code = too_large
        return JsonResponse(body, status=status_code)
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_404(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"No such page: {request.path}"), status=404)


def json_500(request) -> JsonResponse:
    return JsonResponse(error_body("server_error", "Internal server error; the error was logged."), status=500)
