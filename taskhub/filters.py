"""Query filters that take what the OpenAPI document says they take, and refuse the rest (400); the
filter backend of every list (``FilterBackend``).

django-filter's ``BooleanFilter`` reads any value it does not know (``null``, ``yes``) as "no filter"
and its ``NumberFilter`` takes decimals (``0.5``) for an integer column; an empty value
(``?created_before=``) is no filter at all: a client's typo answered 200 with everything, or
nothing, instead of naming the parameter.
"""

import re

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend

_INTEGER = re.compile(r"[+-]?[0-9]+")


def refuse_empty(value) -> None:
    """A parameter given with an empty value is refused; one left out (None) is no filter."""
    if value == "":
        raise forms.ValidationError("Give a value, or leave the parameter out.", code="invalid")


class StrictIntegerField(forms.IntegerField):
    def to_python(self, value):
        refuse_empty(value)
        if value is None:
            return None
        if not _INTEGER.fullmatch(str(value)):
            raise forms.ValidationError("Must be a whole number.", code="invalid")
        return int(value)


class StrictBooleanField(forms.NullBooleanField):
    widget = forms.TextInput

    def to_python(self, value):
        refuse_empty(value)
        if value is None:
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError("Must be true or false.", code="invalid")

    def validate(self, value):
        pass


class StrictIntegerFilter(django_filters.NumberFilter):
    field_class = StrictIntegerField


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


# The query parameters a paginator reads (DRF's names for its three paginators).
_PAGINATION_PARAMETERS = (
    "cursor_query_param",
    "page_query_param",
    "page_size_query_param",
    "limit_query_param",
    "offset_query_param",
)


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, skipped when the request names no parameter but the paginator's.

    A FilterSet given no data filters nothing, but building it is not free: every request deep-copies
    the set's filters, builds a form class and a form from them and validates it. That was a fifth
    of a 50-job list page's CPU (``bench/README.md``), for the most common list request of all: the
    newest page, or the next one. With any other parameter (a filter, a search, an unknown name)
    the FilterSet runs as before.
    """

    def filter_queryset(self, request, queryset, view):
        paginator = getattr(view, "paginator", None)
        paging = {getattr(paginator, name, None) for name in _PAGINATION_PARAMETERS}
        if all(name in paging for name in request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)
