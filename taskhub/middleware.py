"""Middleware of the whole project (API, admin, streams).

``RejectNulParametersMiddleware``: a query parameter with a NUL character is a 400, whatever the
path: PostgreSQL cannot compare text with one.

``SynchronousChainMiddleware``: one crossing to a thread per request under ASGI, not one per
middleware hook. Under ASGI, Django runs a middleware that can be asynchronous (every
``MiddlewareMixin`` one) asynchronously whenever the handler below it is asynchronous, and such a
middleware then calls each of its ``process_request`` / ``process_response`` hooks in a worker
thread: a dozen crossings between the event loop and threads for every request to a synchronous
view (DRF, the admin). A synchronous-only middleware at the end of the list makes Django build the
whole chain synchronously, entered once from the event loop; async views (the live streams) still
run on the event loop. https://docs.djangoproject.com/en/5.2/topics/http/middleware/#asynchronous-support

``SecureCookiesOnHttpsMiddleware``: every cookie set in an answer to an HTTPS request is
``Secure`` (SESSION_COOKIE_SECURE / CSRF_COOKIE_SECURE make them Secure on plain HTTP too). A
cookie set over plain HTTP could not be kept from the network anyway, and a Secure one would never
come back there: ``make run`` serves http://127.0.0.1 with DEBUG off.

``ContentSecurityPolicyMiddleware``: the CONTENT_SECURITY_POLICY header on every HTML page (the
admin, the API docs): scripts, styles, fonts and images from this server only (Django 6 has this
built in; on 5.2 a header is all it takes, no package).
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .errors import error_body


def _nul_parameter(request: HttpRequest) -> JsonResponse | None:
    """A query parameter with a NUL character is refused: PostgreSQL cannot compare text with one."""
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            name = key.replace("\x00", "\\u0000")
            message = "contains a NUL character (\\u0000)."
            return JsonResponse(error_body("invalid", f"{name}: {message}", {name: [message]}), status=400)
    return None


class RejectNulParametersMiddleware:
    """Sync and async alike, so an async view (a live stream) is not pushed onto a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return _nul_parameter(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest):
        return _nul_parameter(request) or await self.get_response(request)


class SynchronousChainMiddleware:
    """Last in MIDDLEWARE: passes every request on unchanged (see the module docstring)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


class SecureCookiesOnHttpsMiddleware:
    """Placed before the session and CSRF middleware, so it sees the cookies they set."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.is_secure():
            for cookie in response.cookies.values():
                cookie["secure"] = True
        return response


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and response.get("Content-Type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", policy)
        return response
