"""Query filters that take what the OpenAPI document says they take, and refuse the rest (400).

django-filter's ``BooleanFilter`` reads any value it does not know (``null``, ``yes``) as "no filter"
and its ``NumberFilter`` takes decimals (``0.5``) for an integer column; an empty value
(``?created_before=``) is no filter at all: a client's typo answered 200 with everything, or
nothing, instead of naming the parameter.
"""

import re

import django_filters
from django import forms

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
