"""Server-sent event streams of job changes: one job (``/jobs/{id}/stream/``) or a filtered list
(``/jobs/stream/``).

Plain async Django views, not DRF viewsets: under ASGI a waiting stream is a suspended coroutine,
holding no thread and no database connection. Authentication (bearer token or session, DRF's own
authenticators), the visibility check and the list's filters (``JobFilter``) run once, on the
stream-database threads; errors use the API's one JSON shape. Each event is ``event: state`` with an
``id:`` and the job's changing fields as ``data:``; a job's stream ends with ``event: end`` after a
terminal state. Every connection starts with the current state, so a client that reconnects (with
``Last-Event-ID`` or without) is up to date at once.

Bounds (jobs/streams/guard.py, jobs/streams/hub.py): a user has at most ``JOB_STREAM_MAX_PER_USER``
open streams (the next one is a 429); the API's throttles count each stream opened; every
``JOB_STREAM_KEEPALIVE`` seconds the request is authenticated again, and a stream whose user or
token is no longer valid (or whose staff flag changed) ends with ``event: closed`` (``code``,
``message``); so does every stream when the web process stops (``code`` ``server_shutdown``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django_filters.utils import translate_validation
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from accounts.models import User
from taskhub.errors import ApplicationError, NotFound, error_body, exception_handler
from taskhub.handlers import release_request_thread

from .. import selectors
from ..filters import JobFilter
from ..live import JobState
from ..models import Workflow
from .feeds import GONE, KEEPALIVE, ListScope, WorkflowState, job_states, list_states, run_db, workflow_states
from .guard import Slot, fresh_session_user, take_slot
from .hub import closing, current_hub

RETRY_MS = 2000  # how soon a browser's EventSource reconnects after a drop


class _Refused(Exception):
    """An error answer computed on a database thread: the API's JSON error body and its status."""

    def __init__(self, exc: Exception) -> None:
        response = exception_handler(exc, {})
        self.status, self.body = response.status_code, response.data
        self.headers = {name: value for name, value in response.items() if name in ("WWW-Authenticate", "Retry-After")}


def _authenticate(request: HttpRequest, *, throttle: bool = True) -> User:
    """The user of a bearer token or a session, as the REST API authenticates (401 otherwise), and
    its throttles (429)."""
    authenticators = [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    drf_request = Request(request, authenticators=authenticators)
    try:
        user = drf_request.user
        if not user or not user.is_authenticated:
            raise exceptions.NotAuthenticated()
    except (exceptions.NotAuthenticated, exceptions.AuthenticationFailed) as exc:
        exc.auth_header = authenticators[0].authenticate_header(request)
        raise _Refused(exc) from None
    for throttle_class in api_settings.DEFAULT_THROTTLE_CLASSES if throttle else ():
        throttled = throttle_class()
        if not throttled.allow_request(drf_request, None):
            raise _Refused(exceptions.Throttled(throttled.wait()))
    return user


def _open_job(request: HttpRequest, job_id: str) -> User:
    user = _authenticate(request)
    try:
        selectors.job_get(user=user, job_id=job_id)
    except Exception as exc:  # noqa: BLE001 - NotFound, or a malformed id: the one JSON error shape
        raise _Refused(exc) from None
    return user


def _open_list(request: HttpRequest) -> tuple[User, ListScope]:
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
    return user, ListScope(
        candidates=candidates.qs,
        statuses=frozenset(cleaned.get("status") or ()),
        owner_id=None if selectors.sees_every_job(user) else user.id,
        filtered=any(value not in (None, "", []) for name, value in cleaned.items() if name != "status"),
    )


def _open_workflow(request: HttpRequest, workflow_id: str) -> tuple[User, ListScope]:
    """A workflow's stream: the workflow (if the caller may see it: theirs, or any for staff who see
    every job) and the list stream of its steps."""
    user = _authenticate(request)
    workflows = Workflow.objects.all() if selectors.sees_every_job(user) else Workflow.objects.filter(owner=user)
    try:
        found = workflows.filter(id=workflow_id).exists()
    except (ValidationError, ValueError):  # not a UUID: no such workflow
        found = False
    if not found:
        raise _Refused(NotFound(f"Workflow {workflow_id} not found."))
    steps = selectors.job_list(user=user).filter(workflow_id=workflow_id)
    owner_id = None if selectors.sees_every_job(user) else user.id
    return user, ListScope(candidates=steps, statuses=frozenset(), owner_id=owner_id, filtered=True)


def _recheck(request: HttpRequest, opened: User) -> dict[str, str] | None:
    """Why the stream opened by ``opened`` must end now (the error body), or None."""
    fresh_session_user(request)
    try:
        user = _authenticate(request, throttle=False)
    except _Refused as refused:
        return {"code": refused.body["code"], "message": refused.body["message"]}
    if user.pk != opened.pk or user.is_staff != opened.is_staff:
        return error_body("permissions_changed", "Your permissions changed: reconnect to see what you may see now.")
    return None


SHUTDOWN = error_body("server_shutdown", "The server is restarting: reconnect.")


def _error(refused: _Refused) -> JsonResponse:
    return JsonResponse(refused.body, status=refused.status, headers=refused.headers)


def _method_not_allowed(request: HttpRequest) -> JsonResponse | None:
    if request.method == "GET":
        return None
    return _error(_Refused(exceptions.MethodNotAllowed(request.method)))


def _sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _guarded(
    states: AsyncIterator[JobState | str], check: Callable[[], Awaitable[dict | None]]
) -> AsyncIterator[JobState | str | dict]:
    """``states``, with ``check()`` every JOB_STREAM_KEEPALIVE seconds whatever the feed is doing; a
    dict (why the stream ends: ``check``'s answer, or the process's shutdown) comes last."""
    stopping = closing()
    stop_waiter = asyncio.ensure_future(stopping.wait())
    upcoming: asyncio.Future | None = None
    check_at = time.monotonic() + settings.JOB_STREAM_KEEPALIVE
    try:
        while True:
            if upcoming is None:
                upcoming = asyncio.ensure_future(anext(states))
            if (left := check_at - time.monotonic()) > 0:
                await asyncio.wait({upcoming, stop_waiter}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                yield SHUTDOWN
                return
            if time.monotonic() >= check_at:
                check_at = time.monotonic() + settings.JOB_STREAM_KEEPALIVE
                if why := await check():
                    yield why
                    return
            if upcoming.done():
                try:
                    state = upcoming.result()
                except StopAsyncIteration:
                    return
                upcoming = None
                yield state
    finally:
        stop_waiter.cancel()
        if upcoming is not None and not upcoming.done():
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
        await states.aclose()


async def _events(
    request: HttpRequest, user: User, slot: Slot, states: AsyncIterator[JobState | str], *, identity: bool
) -> AsyncIterator[bytes]:
    async def check() -> dict | None:
        await slot.refresh()
        return await run_db(_recheck, request, user)

    try:
        # A stream lasts minutes to hours: once the view and the middleware are done, its request
        # thread goes back for other requests (taskhub.handlers).
        release_request_thread()
        yield f"retry: {RETRY_MS}\n\n".encode()
        async for state in _guarded(states, check):
            if isinstance(state, dict):
                yield _sse("closed", state)
            elif state == KEEPALIVE:
                yield b": keep-alive\n\n"
            elif state == GONE:
                yield _sse("end", {"status": None, "deleted": True})
            elif isinstance(state, WorkflowState):
                if not state.shown:
                    yield _sse("workflow", state.fields, state.event_id)
                if state.ends:
                    yield _sse("end", {"id": state.fields["id"], "status": state.fields["status"]})
            else:
                yield _sse("state", state.data(identity=identity), state.event_id)
                if state.terminal and not identity:
                    yield _sse("end", {"id": state.job_id, "status": state.status})
    finally:
        await slot.release()


async def _slot(user: User) -> Slot:
    """A slot among the user's JOB_STREAM_MAX_PER_USER open streams (a 429 when none is left)."""
    slot = await take_slot(current_hub(), user.pk)
    if slot is None:
        cap = settings.JOB_STREAM_MAX_PER_USER
        raise _Refused(
            ApplicationError(
                f"Too many open streams: at most {cap} per user (JOB_STREAM_MAX_PER_USER). Close one, "
                "or follow several jobs with one list stream (/api/v1/jobs/stream/).",
                code="too_many_streams",
                status_code=429,
                headers={"Retry-After": str(int(settings.JOB_STREAM_KEEPALIVE))},
            )
        )
    return slot


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
        user = await run_db(_open_job, request, pk)
        slot = await _slot(user)
    except _Refused as refused:
        return _error(refused)
    return _stream(_events(request, user, slot, job_states(pk), identity=False))


@csrf_exempt
async def job_list_stream(request: HttpRequest) -> HttpResponse:
    """``text/event-stream`` of the changes of every job the caller may see that passes the list's filters."""
    if refused := _method_not_allowed(request):
        return refused
    try:
        user, scope = await run_db(_open_list, request)
        slot = await _slot(user)
    except _Refused as refused:
        return _error(refused)
    return _stream(_events(request, user, slot, list_states(scope), identity=True))


@csrf_exempt
async def workflow_stream(request: HttpRequest, pk: str) -> HttpResponse:
    """``text/event-stream`` of a workflow and its steps: each step's state at once, then every change (a
    step released from waiting, started, progressing, finished), as the job list stream shows them;
    ``event: workflow`` with the workflow's own status and progress at once and at each change of them;
    ``event: end`` once it is finished and none of its steps runs or is released."""
    if refused := _method_not_allowed(request):
        return refused
    try:
        user, scope = await run_db(_open_workflow, request, pk)
        slot = await _slot(user)
    except _Refused as refused:
        return _error(refused)
    return _stream(_events(request, user, slot, workflow_states(scope, pk), identity=True))
