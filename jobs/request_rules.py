"""The rule fields of a job request that the jobs API and the schedules API share: a concurrency
key (``concurrency``) and a uniqueness rule (``unique``), as request fields and in the OpenAPI
document (used by ``jobs.serializers`` and ``jobs.schedules.serializers``)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from taskhub.errors import InvalidInput
from taskhub.serializers import StrictFieldsMixin

from .catalog import CONCURRENCY_KEY_MAX, CONCURRENCY_KEY_PATTERN, CONCURRENCY_LIMIT_MAX, Concurrency
from .models import UniquePolicy
from .unique import PERIOD_MAX


class ConcurrencyRuleSerializer(serializers.Serializer):
    """Documents a job's ``concurrency`` (request and answer); ``catalog.Concurrency.parse`` checks it."""

    key = serializers.CharField(
        max_length=CONCURRENCY_KEY_MAX, help_text="Jobs with the same key share the limit, e.g. tenant-7."
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=CONCURRENCY_LIMIT_MAX, help_text="At most this many of them run at once."
    )
    waiting_since = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Pending: since when it waits for its key (null when it does not)."
    )


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": False,
        "required": ["key", "limit"],
        "properties": {
            "key": {
                "type": "string",
                "minLength": 1,
                "maxLength": CONCURRENCY_KEY_MAX,
                "pattern": CONCURRENCY_KEY_PATTERN,
                "description": "Jobs with the same key share the limit, e.g. tenant-7.",
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": CONCURRENCY_LIMIT_MAX,
                "description": "At most this many of them run at once.",
            },
        },
    }
)
class ConcurrencyField(serializers.Field):
    """A request's ``concurrency``: ``{"key": "tenant-7", "limit": 1}`` or null. Errors name
    ``concurrency.key`` / ``concurrency.limit`` (in bulk ``jobs[<index>].concurrency.key``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault(
            "help_text",
            "At most `limit` jobs with this `key` run at once, across every worker; a job over the limit "
            "waits (not failed, not a retry). Defaults to the task's own rule, if any (task catalog).",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Concurrency:
        try:
            return Concurrency.parse(data, field="concurrency")
        except InvalidInput as exc:
            detail = {name.removeprefix("concurrency."): messages for name, messages in exc.fields.items()}
            raise serializers.ValidationError(detail.get("concurrency") or detail) from None

    def to_representation(self, value):
        return value


class UniqueRuleSerializer(StrictFieldsMixin, serializers.Serializer):
    """A uniqueness rule (checked as a whole by ``jobs.unique.unique_rule``: 400 naming the field)."""

    key = serializers.CharField(
        required=False,
        max_length=255,
        help_text="1-255 characters; per owner. Absent: a hash of the task, args and kwargs (or `kwargs`).",
    )
    policy = serializers.ChoiceField(
        choices=UniquePolicy.choices,
        required=False,
        error_messages={"invalid_choice": f'"{{input}}" is not a policy. Allowed: {", ".join(UniquePolicy.values)}.'},
        help_text="What a second create with the key does; default reject.",
    )
    period = serializers.FloatField(
        required=False,
        min_value=0.001,
        max_value=PERIOD_MAX,
        help_text="Seconds: throttle's window from creation, debounce's delay (throttle and debounce only).",
    )
    max_wait = serializers.FloatField(
        required=False,
        min_value=0.001,
        max_value=PERIOD_MAX,
        help_text="debounce only: never start later than first creation + max_wait (at least the period).",
    )
    kwargs = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Derive the key from these kwargs only."
    )
