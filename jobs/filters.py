from datetime import UTC

import django_filters
from django import forms

from taskhub.filters import StrictIntegerFilter, refuse_empty

from .catalog import catalog
from .models import Job, JobPriority, JobStatus


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


class JobFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=JobStatus.choices, help_text="Repeat for several.")
    priority = django_filters.MultipleChoiceFilter(choices=JobPriority.choices)
    task = django_filters.CharFilter(method="filter_task", help_text="Task name or alias.")
    task_type = django_filters.CharFilter()
    owner = django_filters.CharFilter(method="filter_owner", help_text="Owner id or username (staff).")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")
    schedule = StrictIntegerFilter(field_name="schedule", help_text="Schedule id: the jobs it created.")

    class Meta:
        model = Job
        fields = ("status", "priority", "task", "task_type", "owner", "created_after", "created_before", "schedule")

    def filter_task(self, queryset, name, value):
        if value in catalog:
            value = catalog.get(value).name
        return queryset.filter(celery_task_name=value)

    def filter_owner(self, queryset, name, value):
        return queryset.filter(owner_id=int(value)) if value.isdecimal() else queryset.filter(owner__username=value)
