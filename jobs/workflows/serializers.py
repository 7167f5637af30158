"""The workflows API's shapes: the create body (the steps are checked by ``services.workflow_create``,
which names the step and field of any problem) and a workflow with its steps."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import WorkflowOnFailure, WorkflowStatus
from . import selectors

# A step as the API shows it: "waiting" is a pending step whose parents have not all succeeded yet.
WAITING = "waiting"


class WorkflowStepInputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The step's id, unique in the workflow (1-100 of A-Z a-z 0-9 _ . : -).")
    task = serializers.CharField(help_text="A task of the catalog (GET /api/v1/task-catalog/).")
    args = serializers.ListField(required=False, default=list)
    kwargs = serializers.DictField(required=False, default=dict)
    priority = serializers.CharField(required=False)
    max_retries = serializers.IntegerField(required=False, min_value=0)
    name = serializers.CharField(required=False, help_text="The job's name (default: the step id).")
    after = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="The steps this one waits for."
    )


class WorkflowCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    on_failure = serializers.ChoiceField(choices=WorkflowOnFailure.choices, default=WorkflowOnFailure.CANCEL_DEPENDENTS)
    # Checked whole by the service (step ids, arguments, the graph), which names the step at fault.
    steps = serializers.ListField(child=serializers.JSONField(), help_text="The DAG's steps (see the step schema).")

    class Meta:
        ref_name = "WorkflowCreate"


class WorkflowStepSerializer(serializers.Serializer):
    id = serializers.CharField(source="workflow_step")
    job = serializers.UUIDField(source="id")
    status = serializers.SerializerMethodField()
    after = serializers.ListField(child=serializers.CharField())
    attempts = serializers.IntegerField()
    progress = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()

    @extend_schema_field(
        serializers.ChoiceField(choices=[WAITING, *["pending", "running", "succeeded", "failed", "revoked"]])
    )
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
    finished_at = serializers.DateTimeField()


class WorkflowDetailSerializer(WorkflowSerializer):
    steps = serializers.SerializerMethodField()

    @extend_schema_field(WorkflowStepSerializer(many=True))
    def get_steps(self, workflow) -> list:
        return WorkflowStepSerializer(selectors.workflow_steps(workflow_id=workflow.id), many=True).data
