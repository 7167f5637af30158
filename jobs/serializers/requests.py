"""What creates or retries a job: the bodies of POST /api/v1/jobs/, /bulk/ and /{id}/retry/."""

from django.conf import settings
from rest_framework import serializers

from taskhub.serializers import JSONArrayField, JSONObjectField, StrictFieldsMixin, TaskArgumentsMixin

from ..models import JobPriority
from ..request_rules import ConcurrencyField, UniqueRuleSerializer
from ..services.creation import MAX_EXPIRES_IN
from .job import JobSerializer


class JobCreateSerializer(TaskArgumentsMixin, StrictFieldsMixin, serializers.Serializer):
    read_only_names = JobSerializer.Meta.fields

    name = serializers.CharField(max_length=200, required=False, help_text="Defaults to the task's short name.")
    task_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    celery_task_name = serializers.CharField(
        max_length=200, help_text="A task name or alias from /api/v1/task-catalog/."
    )
    args = JSONArrayField(required=False, default=list, help_text="Positional arguments (a JSON array).")
    kwargs = JSONObjectField(required=False, default=dict, help_text="Keyword arguments (a JSON object).")
    priority = serializers.ChoiceField(
        choices=JobPriority.choices,
        required=False,
        error_messages={"invalid_choice": f'"{{input}}" is not a priority. Allowed: {", ".join(JobPriority.values)}.'},
        help_text="Defaults to the task's priority. urgent/high run on high_priority, normal on default, "
        "low on low_priority.",
    )
    max_retries = serializers.IntegerField(
        min_value=0, max_value=20, required=False, help_text="Automatic retries; defaults to the task's policy."
    )
    run_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Do not start before this time.")
    # Deadlines (README "Deadlines"): checked by the service (jobs.services.creation.job_deadline).
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Never start after this time: a job not started by then ends `expired`. In the future, after "
        "run_at; not with expires_in.",
    )
    expires_in = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_EXPIRES_IN,
        help_text="The deadline in seconds from now (instead of expires_at): a job not started by then ends `expired`.",
    )
    unique = UniqueRuleSerializer(
        required=False, allow_null=True, help_text="A uniqueness rule; absent: the task's default, if any."
    )
    concurrency = ConcurrencyField()


class JobRetrySerializer(TaskArgumentsMixin, StrictFieldsMixin, serializers.Serializer):
    """The optional body of a retry (edit and retry): what the next attempt runs with instead. Each
    value is checked against the task as a create's is; absent keys keep the job's values."""

    read_only_names = JobSerializer.Meta.fields

    args = JSONArrayField(required=False, help_text="New positional arguments (a JSON array).")
    kwargs = JSONObjectField(required=False, help_text="New keyword arguments (a JSON object).")
    priority = serializers.ChoiceField(
        choices=JobPriority.choices,
        required=False,
        error_messages={"invalid_choice": f'"{{input}}" is not a priority. Allowed: {", ".join(JobPriority.values)}.'},
        help_text="A new priority (urgent needs its permission); the job moves to its queue.",
    )


class FirstErrorListField(serializers.ListField):
    """A list whose items are checked until the first bad one (DRF's checks them all): a refused
    request's cost is bounded by where its first mistake is."""

    def run_child_validation(self, data):
        result = []
        for index, item in enumerate(data):
            try:
                result.append(self.child.run_validation(item))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({index: exc.detail}) from None
        return result


class JobBulkCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    """Up to JOB_BULK_MAX job requests, created all together or not at all. An item's errors are
    named ``jobs[<index>].<field>`` (``taskhub.errors.flat_fields``)."""

    jobs = FirstErrorListField(
        child=JobCreateSerializer(),
        allow_empty=False,
        min_length=1,
        max_length=settings.JOB_BULK_MAX,
        help_text="Job requests, each one as the body of POST /api/v1/jobs/.",
    )
