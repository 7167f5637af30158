"""The workflows API's shapes: the create body (the steps are checked by ``services.workflow_create``,
which names the step and field of any problem) and a workflow with its steps."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from taskhub.serializers import JSONArrayField, JSONObjectField, StrictFieldsMixin, TaskArgumentsMixin

from ..models import JobPriority, JobStatus, WorkflowOnFailure, WorkflowStatus
from ..serializers import FirstErrorListField
from . import selectors
from .services import STEP_ID

# A step as the API shows it: "waiting" is a pending step whose parents have not all succeeded yet.
WAITING = "waiting"
STEP_STATUSES = [WAITING, *JobStatus.values]
STEP_ID_PATTERN = f"^{STEP_ID.pattern}$"


class WorkflowStepInputSerializer(TaskArgumentsMixin, StrictFieldsMixin, serializers.Serializer):
    """One step: a job request (as the body of POST /api/v1/jobs/, ``task`` for ``celery_task_name``)
    with the step's ``id`` and the steps it waits for (``after``)."""

    id = serializers.RegexField(
        STEP_ID_PATTERN, max_length=100, help_text="The step's id, unique in the workflow (A-Z a-z 0-9 _ . : -)."
    )
    task = serializers.CharField(max_length=200, help_text="A task name or alias from /api/v1/task-catalog/.")
    args = JSONArrayField(required=False, default=list, help_text="Positional arguments (a JSON array).")
    kwargs = JSONObjectField(required=False, default=dict, help_text="Keyword arguments (a JSON object).")
    priority = serializers.ChoiceField(choices=JobPriority.choices, required=False)
    max_retries = serializers.IntegerField(min_value=0, max_value=20, required=False)
    name = serializers.CharField(max_length=200, required=False, help_text="The job's name (default: the step id).")
    after = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        default=list,
        help_text="The ids of the steps this one waits for: it is sent once they have all succeeded.",
    )


class WorkflowCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    on_failure = serializers.ChoiceField(
        choices=WorkflowOnFailure.choices,
        default=WorkflowOnFailure.CANCEL_DEPENDENTS,
        help_text="cancel_dependents: a failed step's dependents are cancelled; continue: they wait (for a retry) "
        "while independent branches go on.",
    )
    steps = FirstErrorListField(
        child=WorkflowStepInputSerializer(),
        min_length=1,
        max_length=settings.WORKFLOW_MAX_STEPS,
        help_text="The DAG's steps (at most WORKFLOW_MAX_STEPS). The graph (ids, after, cycles) is checked whole "
        "before anything is written.",
    )

    class Meta:
        ref_name = "WorkflowCreate"


class WorkflowStepSerializer(serializers.Serializer):
    id = serializers.CharField(source="workflow_step")
    job = serializers.UUIDField(source="id")
    status = serializers.SerializerMethodField()
    after = serializers.ListField(child=serializers.CharField())
    attempts = serializers.IntegerField()
    progress = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.ChoiceField(choices=STEP_STATUSES))
    def get_status(self, step: dict) -> str:
        return WAITING if step["status"] == "pending" and step["parents_remaining"] else step["status"]


class WorkflowSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    on_failure = serializers.ChoiceField(choices=WorkflowOnFailure.choices)
    status = serializers.ChoiceField(choices=WorkflowStatus.choices)
    progress = serializers.IntegerField(help_text="Finished steps / steps, in percent.")
    steps_total = serializers.IntegerField()
    steps_succeeded = serializers.IntegerField()
    steps_failed = serializers.IntegerField()
    steps_cancelled = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class WorkflowDetailSerializer(WorkflowSerializer):
    steps = serializers.SerializerMethodField()

    @extend_schema_field(WorkflowStepSerializer(many=True))
    def get_steps(self, workflow) -> list:
        return WorkflowStepSerializer(selectors.workflow_steps(workflow_id=workflow.id), many=True).data
