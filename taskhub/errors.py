"""One error shape for the whole API.

Every error answer is ``{"code": "...", "message": "...", "fields": {...}}`` (``fields`` only
when input fields are at fault). Services raise :class:`ApplicationError`; DRF and Django
errors are translated by :func:`exception_handler` so clients never see another shape. Outside
DRF, Django's error views (taskhub/urls.py) answer in the same shape, except on the admin's pages,
whose 403 and 500 are HTML pages in the admin's style (templates/403.html, 500.html).
"""

import logging
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader
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


def _join(path: str, key: Any) -> str:
    """``jobs`` + 0 -> ``jobs[0]``; ``interval`` + ``every`` -> ``interval.every``; a nested object's
    ``non_field_errors`` belong to the object itself."""
    if key == "non_field_errors" and path:
        return path
    if isinstance(key, int) or (isinstance(key, str) and key.isdecimal() and path):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def flat_fields(detail: Any, path: str = "") -> dict[str, list[str]]:
    """Errors as the Error schema documents them, ``{name: [message, ...]}``, whatever their nesting.

    DRF nests a list field's errors by index (``{"jobs": {0: [...]}}``), a nested serializer's by
    field and a list serializer's as a list of objects; each becomes one name such as ``jobs[0]``,
    ``jobs[1].name`` or ``interval.every``.
    """
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            for name, messages in flat_fields(value, _join(path, key)).items():
                fields.setdefault(name, []).extend(messages)
    elif isinstance(detail, list | tuple):
        for index, item in enumerate(detail):
            nested = isinstance(item, dict | list | tuple)
            for name, messages in flat_fields(item, _join(path, index) if nested else path).items():
                fields.setdefault(name, []).extend(messages)
    elif detail is not None and str(detail):
        fields.setdefault(path or "non_field_errors", []).append(str(detail))
    return fields


def _first_message(fields: dict[str, list[str]]) -> str:
    """The first error as one sentence that names its field, e.g. ``kwargs.seconds: ...``."""
    for name, messages in fields.items():
        for message in messages:
            return message if name == "non_field_errors" else f"{name}: {message}"
    return ""


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

ADMIN_PATH = "/admin/"  # taskhub/urls.py: the admin's pages get HTML error pages, everything else JSON


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


# What a database out of reach raises (a partition, a restart): a 503, not a 500.
DATABASE_DOWN = (OperationalError, InterfaceError)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if too_large := _too_large(exc):
        body, status_code = too_large
        return Response(body, status=status_code)
    if isinstance(exc, DATABASE_DOWN):
        # An outage, not a bug: the client may try again (readiness says the same: /readyz).
        logger.warning("The database is out of reach: %s", exc)
        body = error_body("database_unavailable", "The database is out of reach; try again in a few seconds.")
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(exc.code, exc.message, flat_fields(exc.fields)), status=exc.status_code, headers=exc.headers
        )
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
        fields = flat_fields(exc.detail)
        response.data = error_body("invalid", _first_message(fields) or "Invalid input.", fields)
        return response

    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
    if isinstance(detail, dict):
        # simplejwt's token errors: {"detail": "...", "code": "token_not_valid", "messages": [...]}
        message = str(detail.get("detail", "")) or _first_message(flat_fields(detail))
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


def page_403(request, exception=None) -> HttpResponse:
    """Django's 403s outside DRF: the admin's own page (templates/403.html, in the admin's style)
    under /admin/, the one JSON shape anywhere else (the API)."""
    if not request.path.startswith(ADMIN_PATH):
        return JsonResponse(error_body("permission_denied", "You are not allowed to do this."), status=403)
    context = {**admin.site.each_context(request), "title": "Not allowed"}
    return render(request, "403.html", context, status=403)


def page_500(request) -> HttpResponse:
    """An unhandled error: a plain page in the admin's style under /admin/ (templates/500.html,
    rendered without the request: no session or database it might need), JSON anywhere else."""
    if not request.path.startswith(ADMIN_PATH):
        return JsonResponse(error_body("server_error", "Internal server error; the error was logged."), status=500)
    context = {"site_header": admin.site.site_header, "site_title": admin.site.site_title, "index": ADMIN_PATH}
    return HttpResponseServerError(loader.render_to_string("500.html", context))
