from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from taskhub.serializers import StrictFieldsMixin, TaskArgumentsMixin

from .models import Job, JobEvent, JobPriority
from .redaction import strip_server_paths


def _shows_server_paths(context: dict) -> bool:
    request = context.get("request")
    return bool(request and request.user.is_staff)


class JobSerializer(serializers.ModelSerializer):
    """A job as clients see it. Nothing here is writable: jobs change through actions."""

    celery_task_id = serializers.UUIDField(source="id", read_only=True, help_text="Same as id.")
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    owner_id = serializers.IntegerField(read_only=True)
    cancelled_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who cancelled it; null: not cancelled, or by the system.",
    )
    progress_message = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = (
            "id",
            "celery_task_id",
            "name",
            "task_type",
            "celery_task_name",
            "args",
            "kwargs",
            "priority",
            "queue",
            "status",
            "progress",
            "progress_message",
            "progress_meta",
            "result",
            "error",
            "traceback",
            "attempts",
            "max_retries",
            "run_at",
            "created_at",
            "dispatched_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "cancel_requested_at",
            "cancelled_by",
            "worker",
            "owner",
            "owner_id",
            "schedule",
            "scheduled_for",
        )
        read_only_fields = fields

    def get_progress_message(self, job: Job) -> str:
        meta = job.progress_meta if isinstance(job.progress_meta, dict) else {}
        return str(meta.get("message", ""))

    def to_representation(self, job: Job) -> dict:
        """The fields above, written out: DRF's field-by-field walk (``get_attribute`` and
        ``to_representation`` of 31 field objects per job) was a quarter of a list page's CPU. The
        same output, key for key: ``jobs/tests/api/test_serializers.py`` compares it with DRF's own
        walk (``represent_generically``) over jobs in every state."""
        moment = _moment
        meta = job.progress_meta
        owner = _username(job, "owner")
        error, traceback = job.error, job.traceback
        if not _shows_server_paths(self.context):
            error, traceback = strip_server_paths(error), strip_server_paths(traceback)
        return {
            "id": str(job.id),
            "celery_task_id": str(job.id),
            "name": job.name,
            "task_type": job.task_type,
            "celery_task_name": job.celery_task_name,
            "args": job.args,
            "kwargs": job.kwargs,
            "priority": job.priority,
            "queue": job.queue,
            "status": job.status,
            "progress": job.progress,
            "progress_message": str(meta.get("message", "")) if isinstance(meta, dict) else "",
            "progress_meta": meta,
            "result": job.result,
            "error": error,
            "traceback": traceback,
            "attempts": job.attempts,
            "max_retries": job.max_retries,
            "run_at": moment(job.run_at),
            "created_at": moment(job.created_at),
            "dispatched_at": moment(job.dispatched_at),
            "started_at": moment(job.started_at),
            "finished_at": moment(job.finished_at),
            "heartbeat_at": moment(job.heartbeat_at),
            "cancel_requested_at": moment(job.cancel_requested_at),
            "cancelled_by": _username(job, "cancelled_by"),
            "worker": job.worker,
            "owner": owner,
            "owner_id": job.owner_id,
            "schedule": job.schedule_id,
            "scheduled_for": moment(job.scheduled_for),
        }

    def represent_generically(self, job: Job) -> dict:
        """DRF's field-by-field representation, with the same redaction (what the fast one must equal)."""
        data = super().to_representation(job)
        if not _shows_server_paths(self.context):
            data["error"], data["traceback"] = strip_server_paths(data["error"]), strip_server_paths(data["traceback"])
        return data


def _moment(value):
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in the current time zone, "Z" for UTC)."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _username(job: Job, relation: str) -> str | None:
    """The related user's username without loading it when the queryset annotated it (``<relation>_username``)."""
    if relation + "_username" in job.__dict__:
        return job.__dict__[relation + "_username"]
    if getattr(job, relation + "_id") is None:
        return None
    return getattr(job, relation).username


class JobCreateSerializer(TaskArgumentsMixin, StrictFieldsMixin, serializers.Serializer):
    read_only_names = JobSerializer.Meta.fields

    name = serializers.CharField(max_length=200, required=False, help_text="Defaults to the task's short name.")
    task_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    celery_task_name = serializers.CharField(
        max_length=200, help_text="A task name or alias from /api/v1/task-catalog/."
    )
    args = serializers.JSONField(required=False, default=list, help_text="Positional arguments (a JSON array).")
    kwargs = serializers.JSONField(required=False, default=dict, help_text="Keyword arguments (a JSON object).")
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


class JobEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="The user who acted; null: the system."
    )

    class Meta:
        model = JobEvent
        fields = ("id", "at", "kind", "from_status", "to_status", "actor", "actor_label", "message", "data")
        read_only_fields = fields

    def to_representation(self, event: JobEvent) -> dict:
        data = super().to_representation(event)
        if not _shows_server_paths(self.context):
            data["message"] = strip_server_paths(data["message"])
            if isinstance(data["data"], dict):
                data["data"] = {
                    key: strip_server_paths(value) if isinstance(value, str) else value
                    for key, value in data["data"].items()
                }
        return data


class CatalogEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    parameters = serializers.DictField(
        help_text="JSON schema of the keyword arguments; positional order in x-positional-order."
    )
    default_priority = serializers.CharField()
    queue = serializers.CharField()
    soft_time_limit = serializers.IntegerField(allow_null=True)
    time_limit = serializers.IntegerField()
    max_retries = serializers.IntegerField()
    retry_backoff = serializers.FloatField()
    retry_backoff_max = serializers.FloatField()
    cancellable = serializers.BooleanField(help_text="Stops cooperatively at progress calls when cancelled.")
    staff_only = serializers.BooleanField()
