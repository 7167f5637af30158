"""Bodies of the queue control API (/api/v1/queues/, /api/v1/rate-limits/, /api/v1/queue-changes/)."""

from rest_framework import serializers

from taskhub.errors import flat_fields
from taskhub.serializers import StrictFieldsMixin

from ..models import RATE_LIMIT_MAX, RATE_PERIOD_MAX, RateLimitScope
from .services import queue_check, task_check
from .wording import change_text

REASON = serializers.CharField(
    max_length=500, required=False, allow_blank=True, default="", help_text="Why: kept in the audit trail."
)


class RateValueSerializer(StrictFieldsMixin, serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=RATE_LIMIT_MAX, help_text=f"Starts allowed per period, 1-{RATE_LIMIT_MAX}."
    )
    period = serializers.IntegerField(
        min_value=1, max_value=RATE_PERIOD_MAX, help_text=f"The period in seconds, 1-{RATE_PERIOD_MAX}."
    )


class QueueSerializer(serializers.Serializer):
    """A queue: whether it is paused, its rate limit, and its active jobs (every user's)."""

    name = serializers.CharField(read_only=True)
    paused = serializers.BooleanField(read_only=True)
    paused_at = serializers.DateTimeField(read_only=True, allow_null=True)
    paused_by = serializers.CharField(read_only=True, allow_null=True, help_text="Username.")
    reason = serializers.CharField(read_only=True, help_text="Why it was paused.")
    rate_limit = RateValueSerializer(read_only=True, allow_null=True, help_text="At most limit starts per period.")
    pending = serializers.IntegerField(
        read_only=True, help_text="Pending jobs; not the workflow steps waiting for their parents (not runnable)."
    )
    unsent = serializers.IntegerField(
        read_only=True,
        help_text="Pending jobs with no message in the broker: held by a pause, deferred by a rate limit, "
        "or waiting for the sweeper.",
    )
    held = serializers.IntegerField(
        read_only=True,
        help_text="Pending jobs that may not start now: all of a paused queue's, else those whose time is "
        "ahead (deferred by a rate limit, a retry's backoff).",
    )
    running = serializers.IntegerField(read_only=True)
    oldest_pending_seconds = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="How long the oldest due pending job has waited, in seconds (since it was created, or "
        "since its run_at when later); null without one.",
    )


class QueueResumedSerializer(QueueSerializer):
    sent = serializers.IntegerField(read_only=True, help_text="Held jobs sent at once by this resume.")


class QueueActionSerializer(StrictFieldsMixin, serializers.Serializer):
    """Optional body of pause and resume."""

    reason = REASON


class QueueUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    """PATCH a queue: set its rate limit, or clear it with null."""

    read_only_names = (
        "name",
        "paused",
        "paused_at",
        "paused_by",
        "pending",
        "unsent",
        "held",
        "running",
        "oldest_pending_seconds",
    )

    rate_limit = RateValueSerializer(
        allow_null=True, required=False, help_text="{limit, period}, or null to clear it; absent: no change."
    )
    reason = REASON

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(flat_fields(exc.detail)) from exc


class RateLimitSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    scope = serializers.ChoiceField(choices=RateLimitScope.choices, read_only=True)
    queue = serializers.SerializerMethodField(help_text="The queue limited, for a queue's limit.")
    task = serializers.SerializerMethodField(help_text="The task limited (canonical name), for a task's limit.")
    limit = serializers.IntegerField(read_only=True)
    period = serializers.IntegerField(read_only=True, help_text="Seconds.")
    updated_at = serializers.DateTimeField(read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", read_only=True, allow_null=True, default=None)

    def get_queue(self, limit) -> str | None:
        return limit.name if limit.scope == RateLimitScope.QUEUE else None

    def get_task(self, limit) -> str | None:
        return limit.name if limit.scope == RateLimitScope.TASK else None


class RateLimitWriteSerializer(RateValueSerializer):
    """Set the rate limit of one queue or one task (replacing the one it has)."""

    read_only_names = ("id", "scope", "updated_at", "updated_by")

    queue = serializers.CharField(required=False, help_text="A queue; give this or task.")
    task = serializers.CharField(required=False, help_text="A task name or alias from the catalog; or queue.")
    reason = REASON

    def validate_queue(self, value: str) -> str:
        return queue_check(value)

    def validate_task(self, value: str) -> str:
        return task_check(value)

    def validate(self, attrs):
        if ("queue" in attrs) == ("task" in attrs):
            message = "Give exactly one of queue and task."
            raise serializers.ValidationError({"queue": [message], "task": [message]})
        return attrs


class QueueChangeSerializer(serializers.Serializer):
    """One line of the audit trail."""

    id = serializers.IntegerField(read_only=True)
    at = serializers.DateTimeField(read_only=True)
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True, default=None)
    actor_label = serializers.CharField(read_only=True)
    source = serializers.CharField(read_only=True, help_text="api, admin or command.")
    action = serializers.CharField(read_only=True, help_text="paused, resumed, limit_set or limit_cleared.")
    scope = serializers.CharField(read_only=True, help_text="queue or task.")
    name = serializers.CharField(read_only=True)
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)
    reason = serializers.CharField(read_only=True)
    summary = serializers.SerializerMethodField(
        help_text='The change in words, with its reason: "paused (reason: deploy)", '
        '"rate limit set to 10/min (was none)".'
    )

    def get_summary(self, change) -> str:
        return change_text(action=change.action, before=change.before, after=change.after, reason=change.reason)
