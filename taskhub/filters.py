"""Query filters that take what the OpenAPI document says they take, and refuse the rest (400).

django-filter's ``BooleanFilter`` reads any value it does not know (``null``, ``yes``) as "no filter"
and its ``NumberFilter`` takes decimals (``0.5``) for an integer column: a client's typo answered
200 with everything, or nothing, instead of naming the parameter.
"""

import re

import django_filters
from django import forms

_INTEGER = re.compile(r"[+-]?[0-9]+")


class StrictIntegerField(forms.IntegerField):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        if not _INTEGER.fullmatch(str(value)):
            raise forms.ValidationError("Must be a whole number.", code="invalid")
        return int(value)


class StrictBooleanField(forms.NullBooleanField):
    widget = forms.TextInput

    def to_python(self, value):
        if value in self.empty_values:
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
