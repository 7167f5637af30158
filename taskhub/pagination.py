"""Cursor pages for every list of the API, strict about what a client sends.

DRF's ``CursorPagination`` answers a cursor it cannot read with a 404 ("Invalid cursor"), compares a
forged cursor's position with the ordering column as it comes (``id < 'abc'``: a 500), and silently
uses its default page size for ``page_size=null`` or ``-1``. Here each is a 400 naming the parameter,
and the OpenAPI document says what ``page_size`` takes.
"""

import re
from datetime import UTC, datetime

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from .errors import InvalidInput

_WHOLE_NUMBER = re.compile(r"[0-9]+")


class StrictCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not _WHOLE_NUMBER.fullmatch(value) or int(value) < 1:
            message = f"must be a whole number from 1 (at most {self.max_page_size} are used), got {value!r}."
            raise InvalidInput(
                f"{self.page_size_query_param}: {message}",
                fields={self.page_size_query_param: [message[0].upper() + message[1:]]},
            )
        return min(int(value), self.max_page_size)

    def get_ordering(self, request, queryset, view):
        """The ordering with the primary key as tie-breaker: rows that share the ordering value (jobs
        created together) need one fixed order for the cursor's offset among them."""
        ordering = super().get_ordering(request, queryset, view)
        if ordering[-1].lstrip("-") in ("id", "pk"):
            return ordering
        return (*ordering, "-id" if ordering[0].startswith("-") else "id")

    def decode_cursor(self, request):
        """A cursor this API did not give out is a 400 naming it, whatever is wrong with it."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise InvalidInput("cursor: not a cursor this API gave out.", fields={"cursor": [str(exc.detail)]}) from exc
        if cursor is None or cursor.position is None:
            return cursor
        try:
            position = self.clean_position(cursor.position)
        except ValidationError as exc:
            message = f"cursor: its position {cursor.position!r} is not a valid {self.ordering[0].lstrip('-')}."
            raise InvalidInput(message, fields={"cursor": exc.messages}) from exc
        return cursor._replace(position=position)

    def clean_position(self, position: str) -> str:
        """The position as the ordering column reads it; ValidationError when it cannot. A time is
        compared in UTC: PostgreSQL refuses offsets beyond ±15:59, which Python reads."""
        try:
            field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            return position
        value = field.to_python(position)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            try:
                return value.astimezone(UTC).isoformat()
            except OverflowError as exc:
                raise ValidationError("This time is out of range once converted to UTC.", code="invalid") from exc
        return position

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Results per page (default {self.page_size}); more than {self.max_page_size} count as "
                    f"{self.max_page_size}."
                )
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = "The position of a page: from the `next` or `previous` link of another."
        return parameters
