from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from taskhub.serializers import JSONArrayField, JSONObjectField, StrictFieldsMixin, TaskArgumentsMixin

from .models import Job, JobEvent, JobPriority
from .redaction import strip_server_paths
from .request_rules import ConcurrencyField, ConcurrencyRuleSerializer, UniqueRuleSerializer
from .selectors import LIST_LEFT_OUT
from .services.creation import MAX_EXPIRES_IN

LEFT_OUT = "null on a list page when larger than JOB_LIST_INLINE_MAX_BYTES (see `<field>_truncated`)."
TRUNCATED = (
    "True when `{field}` was left out of this list page (null) because its JSON text is larger than "
    "JOB_LIST_INLINE_MAX_BYTES (4096 by default); the job's detail has it whole. Always false in a detail."
)


def _left_out(job: Job, field: str) -> tuple[Any, bool]:
    """A field's value and whether it was left out: a list page's query (``selectors.job_list_page``)
    annotated it as ``<field>_inline``, ``[value]`` or null when too large."""
    values = job.__dict__
    if f"{field}_inline" in values:
        inline = values[f"{field}_inline"]
        return (None, True) if inline is None else (inline[0], False)
    return getattr(job, field), False


# --- Concurrency keys (README "Concurrency keys") ---


def _concurrency(job: Job) -> dict | None:
    if job.concurrency_key is None:
        return None
    return {
        "key": job.concurrency_key,
        "limit": job.concurrency_limit,
        "waiting_since": _moment(job.concurrency_waiting_since),
    }


# --- end of concurrency keys


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
    args = serializers.JSONField(read_only=True, allow_null=True, help_text="Positional arguments. " + LEFT_OUT)
    kwargs = serializers.JSONField(read_only=True, allow_null=True, help_text="Keyword arguments. " + LEFT_OUT)
    result = serializers.JSONField(read_only=True, allow_null=True, help_text="The return value. " + LEFT_OUT)
    args_truncated = serializers.SerializerMethodField(help_text=TRUNCATED.format(field="args"))
    kwargs_truncated = serializers.SerializerMethodField(help_text=TRUNCATED.format(field="kwargs"))
    result_truncated = serializers.SerializerMethodField(help_text=TRUNCATED.format(field="result"))
    unique_policy = serializers.CharField(
        read_only=True, help_text='The unique key\'s policy (README "Unique jobs"); "" without a key.'
    )
    concurrency = serializers.SerializerMethodField(help_text="Its concurrency key and limit; null when none.")

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
            "expires_at",
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
            "unique_key",
            "unique_policy",
            "duplicates",
            "workflow",
            "workflow_step",
            "parents_remaining",
            "args_truncated",
            "kwargs_truncated",
            "result_truncated",
            "concurrency",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_args_truncated(self, job: Job) -> bool:
        return _left_out(job, "args")[1]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_kwargs_truncated(self, job: Job) -> bool:
        return _left_out(job, "kwargs")[1]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_result_truncated(self, job: Job) -> bool:
        return _left_out(job, "result")[1]

    @extend_schema_field(ConcurrencyRuleSerializer(allow_null=True))
    def get_concurrency(self, job: Job) -> dict | None:
        return _concurrency(job)

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
        (args, args_out), (kwargs, kwargs_out), (result, result_out) = (
            _left_out(job, field) for field in LIST_LEFT_OUT
        )
        if not _shows_server_paths(self.context):
            error, traceback = strip_server_paths(error), strip_server_paths(traceback)
        return {
            "id": str(job.id),
            "celery_task_id": str(job.id),
            "name": job.name,
            "task_type": job.task_type,
            "celery_task_name": job.celery_task_name,
            "args": args,
            "kwargs": kwargs,
            "priority": job.priority,
            "queue": job.queue,
            "status": job.status,
            "progress": job.progress,
            "progress_message": str(meta.get("message", "")) if isinstance(meta, dict) else "",
            "progress_meta": meta,
            "result": result,
            "error": error,
            "traceback": traceback,
            "attempts": job.attempts,
            "max_retries": job.max_retries,
            "run_at": moment(job.run_at),
            "expires_at": moment(job.expires_at),
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
            "unique_key": job.unique_key,
            "unique_policy": job.unique_policy,
            "duplicates": job.duplicates,
            "workflow": job.workflow_id,
            "workflow_step": job.workflow_step,
            "parents_remaining": job.parents_remaining,
            "args_truncated": args_out,
            "kwargs_truncated": kwargs_out,
            "result_truncated": result_out,
            "concurrency": _concurrency(job),
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


DEDUPE_OUTCOMES = ("existing", "replaced", "debounced", "follow_up_queued", "throttled", "cancelled_running")


class JobCreatedSerializer(JobSerializer):
    """The answer to a create: the job, and what a unique key did (README "Unique jobs")."""

    dedupe_outcome = serializers.ChoiceField(
        choices=DEDUPE_OUTCOMES,
        read_only=True,
        allow_null=True,
        help_text="null: a new job (201). Else (200) the job holding the key and what the request did to it; "
        "cancelled_running: a new job (201) after the running holder's cancel.",
    )

    class Meta(JobSerializer.Meta):
        fields = (*JobSerializer.Meta.fields, "dedupe_outcome")
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        return {**super().to_representation(job), "dedupe_outcome": getattr(job, "dedupe_outcome", None)}


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


class JobEventSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(
        read_only=True,
        help_text="The line's id. The ordinary lines read from the job's row have fixed ids: -1 created, "
        "-2 started, -3 succeeded (of its current run); stored lines have positive ids.",
    )
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
    soft_time_limit = serializers.IntegerField(
        allow_null=True,
        help_text="Seconds; SoftTimeLimitExceeded is raised in the task then (in a threads-pool worker, once it "
        "runs Python code again); null: none.",
    )
    time_limit = serializers.IntegerField(
        help_text="Seconds; a job still running then ends failed (error type TimeLimitExceeded, no automatic "
        "retry) and its work is stopped, in every worker pool."
    )
    max_retries = serializers.IntegerField()
    retry_backoff = serializers.FloatField()
    retry_backoff_max = serializers.FloatField()
    cancellable = serializers.BooleanField(help_text="Stops cooperatively at progress calls when cancelled.")
    staff_only = serializers.BooleanField()
    concurrency = serializers.DictField(
        allow_null=True,
        help_text='The concurrency rule every job of the task gets unless its request names one: {"key", "limit"}; '
        "the key may name the job's arguments, e.g. tenant-{tenant_id}.",
    )
    package = serializers.CharField(
        help_text='Where the task comes from: "taskhub" (built in), or the distribution name of the installed task '
        "package that declares it (README, Writing a task package)."
    )
    package_version = serializers.CharField(
        allow_null=True, help_text="The task package's installed version; null for taskhub's own tasks."
    )
