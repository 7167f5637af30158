import json
from datetime import UTC
from typing import Any

import django_filters
from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform, KeyTransformExact
from drf_spectacular.drainage import set_override

from taskhub.filters import StrictBooleanFilter, StrictIntegerFilter, refuse_empty

from .catalog import catalog
from .models import DEAD_JOBS, Job, JobPriority, JobStatus


class UTCDateTimeField(forms.DateTimeField):
    """An ISO 8601 time with any offset Python reads (up to ±23:59), converted to UTC.

    PostgreSQL refuses offsets beyond ±15:59; in UTC every such time compares as meant, and one
    that leaves the calendar in UTC (year 0 or 10000) is a 400 instead of a 500.
    """

    def to_python(self, value):
        refuse_empty(value)
        value = django_filters.fields.IsoDateTimeField().to_python(value)
        if value is None or value.tzinfo is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("This time is out of range once converted to UTC.", code="invalid") from exc


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


# --- Search by arguments ------------------------------------------------------------------------
# On PostgreSQL every term is a JSON containment (``@>``) that the GIN indexes on ``args`` and
# ``kwargs`` answer for jobs not running (migrations 0006, 0014, 0024) and ``job_running`` for running ones;
# SQLite, the embedded default, can only match top-level keys.

MAX_ARGUMENT_TERMS = 10
MAX_ARGUMENT_TERM_LENGTH = 1000
KWARG_HELP = (
    "Jobs whose kwargs have this key and value: `key:value`, e.g. `user_id:42` or `email:a@example.com`. "
    'The value is read as JSON when it is JSON (`42` also matches the string "42"). '
    "Repeat for several (all must match)."
)
ARG_HELP = "Jobs whose args list holds this value (read as JSON when it is JSON). Repeat for several."
KWARGS_CONTAINS_HELP = 'Jobs whose kwargs contain this JSON object (nested containment), e.g. `{"user": {"id": 7}}`.'
ARGS_CONTAINS_HELP = "Jobs whose args contain every element of this JSON array, e.g. `[1, 2]`."


MAX_TERM_DEPTH = 32
"""How deeply a search term's JSON may nest: Django builds a containment's SQL recursively."""


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_TERM_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _read_json(text: str) -> Any:
    """``text`` read as JSON (ValueError when it is none), refused when nested too deeply."""
    try:
        value = json.loads(text)
        too_deep = _too_deep(value)
    except RecursionError:  # the parser's own limit, far above ours
        too_deep = True
    if too_deep:
        raise forms.ValidationError(f"A term is nested more than {MAX_TERM_DEPTH} levels deep.", code="too_deep")
    return value


def _json_or_text(text: str) -> Any:
    try:
        return _read_json(text)
    except ValueError:
        return text


def _alternatives(text: str) -> list[Any]:
    """What a term's value may match: its JSON reading, and the text itself when that differs."""
    value = _json_or_text(text)
    return [value] if value == text else [value, text]


def _check_postgresql(value, postgresql_only: bool) -> None:
    if value and postgresql_only and connection.vendor != "postgresql":
        raise forms.ValidationError(
            "This search needs PostgreSQL; the embedded SQLite database matches only kwarg=key:value.",
            code="unsupported",
        )


class ArgumentTermsField(forms.Field):
    """Repeated query parameters (``?kwarg=a:1&kwarg=b:2``) as a list of strings."""

    widget = forms.MultipleHiddenInput

    def __init__(self, *args, postgresql_only: bool = True, **kwargs):
        self.postgresql_only = postgresql_only
        super().__init__(*args, **kwargs)

    def validate(self, value):
        super().validate(value)
        _check_postgresql(value, self.postgresql_only)

    def to_python(self, value):
        values = [str(item) for item in value or [] if item != ""]  # an empty box searches nothing
        if len(values) > MAX_ARGUMENT_TERMS:
            raise forms.ValidationError(f"At most {MAX_ARGUMENT_TERMS} terms.", code="too_many")
        if any(len(item) > MAX_ARGUMENT_TERM_LENGTH for item in values):
            raise forms.ValidationError(f"A term is at most {MAX_ARGUMENT_TERM_LENGTH} characters.", code="too_long")
        return values

    def clean(self, value):
        values = super().clean(value)
        for term in values:
            _json_or_text(term[1] if isinstance(term, tuple) else term)  # refuses a term nested too deeply
        return values


class KwargTermsField(ArgumentTermsField):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, postgresql_only=False, **kwargs)

    def to_python(self, value):
        pairs = []
        for term in super().to_python(value):
            key, colon, text = term.partition(":")
            if not colon or not key:
                raise forms.ValidationError(
                    "%(term)s: write key:value, e.g. user_id:42.", code="invalid", params={"term": repr(term)}
                )
            pairs.append((key, text))
        return pairs


class JSONTermField(forms.CharField):
    """One JSON value of a given type (``dict`` or ``list``)."""

    def __init__(self, *args, json_type: type, **kwargs):
        self.json_type = json_type
        super().__init__(*args, max_length=MAX_ARGUMENT_TERM_LENGTH, **kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            parsed = _read_json(text)
        except ValueError as exc:
            # Params, not an f-string: messages are %-formatted (Django, django-filter).
            raise forms.ValidationError("Not valid JSON: %(error)s.", code="invalid", params={"error": exc}) from exc
        if not isinstance(parsed, self.json_type):
            kind = "object" if self.json_type is dict else "array"
            raise forms.ValidationError(f"Give a JSON {kind}.", code="invalid")
        return parsed

    def validate(self, value):
        super().validate(value)
        _check_postgresql(value, postgresql_only=True)


def filter_by_arguments(
    queryset: QuerySet,
    *,
    kwarg: list[tuple[str, str]] = (),
    arg: list[str] = (),
    kwargs_contains: dict | None = None,
    args_contains: list | None = None,
) -> QuerySet:
    """Jobs whose arguments match every term (the API's and the admin's argument search).

    The terms come cleaned by the fields above (which refuse PostgreSQL-only terms on SQLite)."""
    postgresql = connection.vendor == "postgresql"
    has_kwargs, has_args = ~Q(kwargs={}), ~Q(args=[])
    for key, text in kwarg:
        if postgresql:
            alternatives = _any(Q(kwargs__contains={key: value}) for value in _alternatives(text))
            queryset = queryset.filter(_indexed(has_kwargs, alternatives))
        else:
            # The lookup compares with JSON_EXTRACT(<rhs>, '$'): the value goes in as JSON text (a bare
            # string would be "malformed JSON" to SQLite), as the ORM's own kwargs__key=value sends it.
            matches = [
                KeyTransformExact(KeyTransform(key, "kwargs"), json.dumps(value)) for value in _alternatives(text)
            ]
            queryset = queryset.filter(_any(Q(match) for match in matches))
    for text in arg:
        queryset = queryset.filter(_indexed(has_args, _any(Q(args__contains=[value]) for value in _alternatives(text))))
    if kwargs_contains:
        queryset = queryset.filter(_indexed(has_kwargs, Q(kwargs__contains=kwargs_contains)))
    if args_contains:
        queryset = queryset.filter(_indexed(has_args, Q(args__contains=args_contains)))
    return queryset


def _indexed(has_arguments: Q, term: Q) -> Q:
    """``term``, said so that the planner can read it from the indexes: the GIN indexes hold the jobs
    with arguments that are not running (migrations 0014, 0024: their conditions). The lists read the
    running jobs apart (``JobQuerySet.running_apart``, migration 0026): the jobs not running through
    the GIN indexes, the running ones (at most the workers' slots) through ``job_running``. The same
    jobs as ``term`` alone: a job that a term matches has arguments."""
    return has_arguments & term


def _any(conditions) -> Q:
    combined = Q()
    for condition in conditions:
        combined |= condition
    return combined


class ArgumentsFilter(django_filters.Filter):
    """One of the argument search's parameters; the FilterSet applies them together."""

    field_class = ArgumentTermsField

    def filter(self, queryset, value):
        return queryset  # JobFilter.filter_queryset applies every argument term at once


class KwargFilter(ArgumentsFilter):
    field_class = KwargTermsField


class JSONTermFilter(ArgumentsFilter):
    field_class = JSONTermField


def _documented(filter_: ArgumentsFilter, schema: dict) -> ArgumentsFilter:
    """The filter with its OpenAPI schema (drf-spectacular cannot infer a custom filter's type)."""
    set_override(filter_, "field", {**schema, "description": filter_.extra["help_text"]})
    return filter_


# What the server takes, said in the document: at most MAX_ARGUMENT_TERMS terms of at most
# MAX_ARGUMENT_TERM_LENGTH characters, no NUL (taskhub.middleware); a kwarg term is key:value (or empty).
_TERM = {"type": "string", "maxLength": MAX_ARGUMENT_TERM_LENGTH, "pattern": "^[^\\x00]*$"}
REPEATED = {"type": "array", "maxItems": MAX_ARGUMENT_TERMS, "items": _TERM}
KWARG_TERMS = {
    "type": "array",
    "maxItems": MAX_ARGUMENT_TERMS,
    "items": {**_TERM, "pattern": "^([^:\\x00]+:[^\\x00]*)?$"},
}


class JobFilter(django_filters.FilterSet):
    # distinct=False: a job has one status and one priority, so no row can match twice; django-filter's
    # default SELECT DISTINCT made PostgreSQL sort every matching row before a page (bench/README).
    status = django_filters.MultipleChoiceFilter(
        choices=JobStatus.choices, distinct=False, help_text="Repeat for several."
    )
    priority = django_filters.MultipleChoiceFilter(choices=JobPriority.choices, distinct=False)
    task = django_filters.CharFilter(method="filter_task", help_text="Task name or alias.")
    task_type = django_filters.CharFilter()
    owner = django_filters.CharFilter(method="filter_owner", help_text="Owner id or username (staff).")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")
    schedule = StrictIntegerFilter(field_name="schedule", help_text="Schedule id: the jobs it created.")
    unique_key = django_filters.CharFilter(
        max_length=255, help_text="Jobs with this unique key (any holder, past too)."
    )
    concurrency_key = django_filters.CharFilter(help_text="Jobs with this concurrency key (README, Concurrency keys).")
    dead = StrictBooleanFilter(
        method="filter_dead",
        help_text="true: dead jobs only (failed with every automatic retry used: attempts >= max_retries; "
        "only a manual retry runs them again); false: every other job.",
    )
    kwarg = _documented(KwargFilter(help_text=KWARG_HELP), KWARG_TERMS)
    arg = _documented(ArgumentsFilter(help_text=ARG_HELP), REPEATED)
    kwargs_contains = _documented(JSONTermFilter(json_type=dict, help_text=KWARGS_CONTAINS_HELP), _TERM)
    args_contains = _documented(JSONTermFilter(json_type=list, help_text=ARGS_CONTAINS_HELP), _TERM)

    class Meta:
        model = Job
        fields = (
            "status",
            "priority",
            "task",
            "task_type",
            "owner",
            "created_after",
            "created_before",
            "schedule",
            "unique_key",
            "concurrency_key",
        )

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        terms = {name: self.form.cleaned_data.get(name) for name in ARGUMENT_FILTERS}
        return filter_by_arguments(queryset, **{name: value for name, value in terms.items() if value})

    def filter_dead(self, queryset, name, value):
        return queryset.filter(DEAD_JOBS) if value else queryset.exclude(DEAD_JOBS)

    def filter_task(self, queryset, name, value):
        if value in catalog:
            value = catalog.get(value).name
        return queryset.filter(celery_task_name=value)

    def filter_owner(self, queryset, name, value):
        return queryset.filter(owner_id=int(value)) if value.isdecimal() else queryset.filter(owner__username=value)


ARGUMENT_FILTERS = ("kwarg", "arg", "kwargs_contains", "args_contains")
