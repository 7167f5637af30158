"""Request checks that hold for every path (API, admin, streams) before any view runs."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, JsonResponse

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
