"""The schedules API's bodies: a periodic job as django-celery-beat stores it, plus its owner."""

import json

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from taskhub.errors import flat_fields
from taskhub.serializers import JSONArrayField, JSONObjectField, StrictFieldsMixin, TaskArgumentsMixin

from ..models import JobPriority
from ..request_rules import ConcurrencyField, ConcurrencyRuleSerializer, UniqueRuleSerializer
from ..services.creation import MAX_EXPIRES_IN
from .checks import INTERVAL_PERIODS
from .fields import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH, display_name


class IntervalSerializer(StrictFieldsMixin, serializers.Serializer):
    every = serializers.IntegerField(min_value=1, help_text="How many periods between two runs.")
    period = serializers.ChoiceField(choices=INTERVAL_PERIODS)


class CrontabSerializer(StrictFieldsMixin, serializers.Serializer):
    minute = serializers.CharField(max_length=240, default="*", help_text="0-59, e.g. '*/15' or '0,30'.")
    hour = serializers.CharField(max_length=96, default="*", help_text="0-23.")
    day_of_week = serializers.CharField(max_length=64, default="*", help_text="0-6 (Sunday is 0) or names.")
    day_of_month = serializers.CharField(max_length=124, default="*", help_text="1-31.")
    month_of_year = serializers.CharField(max_length=64, default="*", help_text="1-12.")
    timezone = serializers.CharField(
        max_length=63, default=settings.TIME_ZONE, help_text="IANA time zone the fields are read in."
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["timezone"] = str(instance.timezone)
        return data


@extend_schema_field(OpenApiTypes.ANY)
class JSONTextField(serializers.Field):
    """django-celery-beat keeps args and kwargs as JSON text; clients see the JSON."""

    def to_representation(self, value):
        return json.loads(value or "null")


class ScheduleSerializer(serializers.Serializer):
    """A schedule as clients see it: every firing creates a job linked to it (``schedule`` in /jobs/)."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.SerializerMethodField(help_text="The name its owner gave it (unique per owner).")
    task = serializers.CharField(read_only=True, help_text="The catalog task's canonical name.")
    args = JSONTextField(read_only=True)
    kwargs = JSONTextField(read_only=True)
    priority = serializers.CharField(source="job_schedule.priority", read_only=True)
    unique = serializers.JSONField(
        source="job_schedule.unique", read_only=True, allow_null=True, help_text="Each job's uniqueness rule."
    )
    concurrency = serializers.SerializerMethodField(help_text="Each job's concurrency key and limit; null: none.")
    interval = IntervalSerializer(read_only=True, allow_null=True)
    crontab = CrontabSerializer(read_only=True, allow_null=True)
    enabled = serializers.BooleanField(read_only=True)
    start_time = serializers.DateTimeField(read_only=True, allow_null=True)
    expires = serializers.DateTimeField(read_only=True, allow_null=True)
    one_off = serializers.BooleanField(read_only=True)
    expires_in = serializers.IntegerField(
        source="job_schedule.expires_in",
        read_only=True,
        allow_null=True,
        help_text="Each job's deadline in seconds from its firing (its expires_at); null: none.",
    )
    description = serializers.CharField(
        source="description_shown", read_only=True, help_text=f"At most {DESCRIPTION_MAX_LENGTH} characters."
    )
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Last firing seen by beat.")
    total_run_count = serializers.IntegerField(read_only=True)
    date_changed = serializers.DateTimeField(read_only=True)
    owner = serializers.CharField(source="job_schedule.owner.username", read_only=True)
    owner_id = serializers.IntegerField(source="job_schedule.owner_id", read_only=True)

    def get_name(self, periodic_task) -> str:
        return display_name(periodic_task)

    @extend_schema_field(ConcurrencyRuleSerializer(allow_null=True))
    def get_concurrency(self, periodic_task) -> dict | None:
        schedule = periodic_task.job_schedule
        if schedule.concurrency_key is None:
            return None
        return {"key": schedule.concurrency_key, "limit": schedule.concurrency_limit, "waiting_since": None}


class ScheduleWriteSerializer(TaskArgumentsMixin, StrictFieldsMixin, serializers.Serializer):
    """Create (all of it) or change (PATCH: only what is given) a schedule."""

    read_only_names = ("id", "last_run_at", "total_run_count", "date_changed", "owner", "owner_id")

    name = serializers.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="Unique among your schedules (other users' names do not matter); also each job's name. "
        "Names starting with taskhub- or celery. are reserved for beat's own entries.",
    )
    task = serializers.CharField(max_length=200, help_text="A task name or alias from /api/v1/task-catalog/.")
    args = JSONArrayField(required=False, default=list, help_text="Positional arguments (a JSON array).")
    kwargs = JSONObjectField(required=False, default=dict, help_text="Keyword arguments (a JSON object).")
    priority = serializers.ChoiceField(
        choices=JobPriority.choices,
        required=False,
        error_messages={"invalid_choice": f'"{{input}}" is not a priority. Allowed: {", ".join(JobPriority.values)}.'},
        help_text="Each job's priority; defaults to the task's.",
    )
    unique = UniqueRuleSerializer(
        required=False,
        allow_null=True,
        help_text='Each job\'s uniqueness rule: {"policy": "reject"} skips a firing while the last job is '
        'pending or running (README "Unique jobs").',
    )
    concurrency = ConcurrencyField(
        help_text='Each job\'s concurrency key, {"key": ..., "limit": ...}: e.g. limit 1 skips no firing but runs '
        "one job of the schedule at a time. Null: the task's own rule, if any."
    )
    interval = IntervalSerializer(required=False, allow_null=True, help_text="Give this or crontab.")
    crontab = CrontabSerializer(required=False, allow_null=True, help_text="Give this or interval.")
    enabled = serializers.BooleanField(required=False, default=True)
    start_time = serializers.DateTimeField(required=False, allow_null=True, help_text="Fire from this time on.")
    expires = serializers.DateTimeField(required=False, allow_null=True, help_text="Stop firing at this time.")
    one_off = serializers.BooleanField(required=False, default=False, help_text="Fire once, then disable.")
    expires_in = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_EXPIRES_IN,
        help_text="Each job's deadline in seconds from its firing: a job not started by then ends `expired`. "
        "Not `expires`, which ends the schedule.",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX_LENGTH)

    def to_internal_value(self, data):
        """Errors of the nested interval and crontab get flat names (``interval.every``), like every error."""
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(flat_fields(exc.detail)) from exc
