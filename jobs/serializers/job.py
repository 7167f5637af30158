"""A job in the API's answers: ``JobSerializer`` (detail, list pages, operations) and the create's
``JobCreatedSerializer``."""

from types import SimpleNamespace
from typing import Any

from django.db import models
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Job
from ..redaction import strip_server_paths
from ..request_rules import ConcurrencyRuleSerializer
from ..selectors import LIST_LEFT_OUT

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


def shows_server_paths(context: dict) -> bool:
    request = context.get("request")
    return bool(request and request.user.is_staff)


class _JobListSerializer(serializers.ListSerializer):
    """Jobs, the current time zone read once for all of them (an asgiref Local look-up per job was
    4 % of a 50-job page's CPU)."""

    def to_representation(self, data) -> list[dict]:
        jobs = data.all() if isinstance(data, models.manager.BaseManager) else data
        zone = timezone.get_current_timezone()
        return [self.child.represent(job, zone) for job in jobs]


class JobSerializer(serializers.ModelSerializer):
    """A job as clients see it. Nothing here is writable: jobs change through actions."""

    # What ``to_representation`` reads of a list page's row (``selectors.job_list_rows``).
    LIST_COLUMNS = (
        *("id", "name", "task_type", "celery_task_name", "priority", "queue", "status", "progress", "progress_meta"),
        *("error", "traceback", "attempts", "max_retries", "run_at", "expires_at", "created_at", "dispatched_at"),
        *("started_at", "finished_at", "heartbeat_at", "cancel_requested_at", "worker", "owner_id", "schedule_id"),
        *("scheduled_for", "unique_key", "unique_policy", "duplicates", "workflow_id", "workflow_step"),
        *("parents_remaining", "concurrency_key", "concurrency_limit", "concurrency_waiting_since"),
        *("owner_username", "cancelled_by_username", *(f"{field}_inline" for field in LIST_LEFT_OUT)),
    )

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
        list_serializer_class = _JobListSerializer

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
        return self.represent(job, timezone.get_current_timezone())

    def represent(self, job: Job, zone) -> dict:
        """The fields above, written out, times in ``zone`` (the current time zone): DRF's field-by-field
        walk (``get_attribute`` and ``to_representation`` of 31 field objects per job) was a quarter of
        a list page's CPU. The same output, key for key: ``jobs/tests/api/test_serializers.py``
        compares it with DRF's own walk (``represent_generically``) over jobs in every state. ``job``
        may also be a list page's row (a dict of ``LIST_COLUMNS``, ``selectors.job_list_rows``): no
        model instance is built."""
        if isinstance(job, dict):
            job = SimpleNamespace(**job)

        def moment(value):  # _moment, inlined: nine a job, 450 a page
            if value is None:
                return None
            if value.tzinfo is None:  # naive: timezone.localtime's error
                return _moment(value, zone)
            text = value.astimezone(zone).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text

        meta = job.progress_meta
        owner = _username(job, "owner")
        error, traceback = job.error, job.traceback
        (args, args_out), (kwargs, kwargs_out), (result, result_out) = (
            _left_out(job, field) for field in LIST_LEFT_OUT
        )
        if not shows_server_paths(self.context):
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
        if not shows_server_paths(self.context):
            data["error"], data["traceback"] = strip_server_paths(data["error"]), strip_server_paths(data["traceback"])
        return data


def _moment(value, zone=None):
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in the current time zone, "Z" for UTC).
    ``zone``: the current time zone, when the caller has read it already."""
    if value is None:
        return None
    text = timezone.localtime(value, zone).isoformat()
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

    def represent(self, job: Job, zone) -> dict:
        return {**super().represent(job, zone), "dedupe_outcome": getattr(job, "dedupe_outcome", None)}
