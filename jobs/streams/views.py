"""Server-sent event streams of job changes: one job (``/jobs/{id}/stream/``) or a filtered list
(``/jobs/stream/``).

Plain async Django views, not DRF viewsets: under ASGI a waiting stream is a suspended coroutine,
holding no thread and no database connection. Authentication (bearer token or session, DRF's own
authenticators), the visibility check and the list's filters (``JobFilter``) run once, on the
stream-database threads; errors use the API's one JSON shape. Each event is ``event: state`` with an
``id:`` and the job's changing fields as ``data:``; a job's stream ends with ``event: end`` after a
terminal state. Every connection starts with the current state, so a client that reconnects (with
``Last-Event-ID`` or without) is up to date at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django_filters.utils import translate_validation
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from accounts.models import User
from taskhub.errors import exception_handler
from taskhub.handlers import release_request_thread

from .. import selectors
from ..filters import JobFilter
from ..live import JobState
from .feeds import GONE, KEEPALIVE, ListScope, job_states, list_states, run_db

RETRY_MS = 2000  # how soon a browser's EventSource reconnects after a drop


class _Refused(Exception):
    """An error answer computed on a database thread: the API's JSON error body and its status."""

    def __init__(self, exc: Exception) -> None:
        response = exception_handler(exc, {})
        self.status, self.body = response.status_code, response.data
        self.headers = {name: value for name, value in response.items() if name == "WWW-Authenticate"}


def _authenticate(request: HttpRequest) -> User:
    """The user of a bearer token or a session, as the REST API authenticates (401 otherwise)."""
    authenticators = [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    try:
        user = Request(request, authenticators=authenticators).user
        if not user or not user.is_authenticated:
            raise exceptions.NotAuthenticated()
    except (exceptions.NotAuthenticated, exceptions.AuthenticationFailed) as exc:
        exc.auth_header = authenticators[0].authenticate_header(request)
        raise _Refused(exc) from None
    return user


def _open_job(request: HttpRequest, job_id: str) -> None:
    user = _authenticate(request)
    try:
        selectors.job_get(user=user, job_id=job_id)
    except Exception as exc:  # noqa: BLE001 - NotFound, or a malformed id: the one JSON error shape
        raise _Refused(exc) from None


def _open_list(request: HttpRequest) -> ListScope:
    user = _authenticate(request)
    visible = selectors.job_list(user=user)
    filters = JobFilter(data=request.GET, queryset=visible, request=request)
    if not filters.is_valid():
        raise _Refused(translate_validation(filters.errors))
    others = request.GET.copy()
    others.pop("status", None)
    candidates = JobFilter(data=others, queryset=visible, request=request)
    candidates.is_valid()
    cleaned = filters.form.cleaned_data
    return ListScope(
        candidates=candidates.qs,
        statuses=frozenset(cleaned.get("status") or ()),
        owner_id=None if selectors.sees_every_job(user) else user.id,
        filtered=any(value not in (None, "", []) for name, value in cleaned.items() if name != "status"),
    )


def _error(refused: _Refused) -> JsonResponse:
    return JsonResponse(refused.body, status=refused.status, headers=refused.headers)


def _method_not_allowed(request: HttpRequest) -> JsonResponse | None:
    if request.method == "GET":
        return None
    return _error(_Refused(exceptions.MethodNotAllowed(request.method)))


def _sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(states: AsyncIterator[JobState | str], *, identity: bool) -> AsyncIterator[bytes]:
    # A stream lasts minutes to hours: once the view and the middleware are done, its request
    # thread goes back for other requests (taskhub.handlers).
    release_request_thread()
    yield f"retry: {RETRY_MS}\n\n".encode()
    async for state in states:
        if state == KEEPALIVE:
            yield b": keep-alive\n\n"
        elif state == GONE:
            yield _sse("end", {"status": None, "deleted": True})
        else:
            yield _sse("state", state.data(identity=identity), state.event_id)
            if state.terminal and not identity:
                yield _sse("end", {"id": state.job_id, "status": state.status})


def _stream(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events through at once
    return response


@csrf_exempt  # GET only; other methods get the JSON 405, not the CSRF middleware's HTML 403
async def job_stream(request: HttpRequest, pk: str) -> HttpResponse:
    """``text/event-stream`` of one job's changes; ends after it finishes."""
    if refused := _method_not_allowed(request):
        return refused
    try:
        await run_db(_open_job, request, pk)
    except _Refused as refused:
        return _error(refused)
    return _stream(_events(job_states(pk), identity=False))


@csrf_exempt
async def job_list_stream(request: HttpRequest) -> HttpResponse:
    """``text/event-stream`` of the changes of every job the caller may see that passes the list's filters."""
    if refused := _method_not_allowed(request):
        return refused
    try:
        scope = await run_db(_open_list, request)
    except _Refused as refused:
        return _error(refused)
    return _stream(_events(list_states(scope), identity=True))
