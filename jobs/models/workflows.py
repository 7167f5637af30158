"""Workflows: DAGs whose every step is an ordinary job (``Job.workflow``, ``Job.workflow_step``).

A step waits (pending, unsent) while ``Job.parents_remaining`` > 0; the door (``jobs/services/_state.py``
and ``_steps.py``) decrements its children's count in the transaction that records a step's success and
sends those that reach zero after commit. ``WorkflowDependency`` holds the edges (parent job -> child job).
The workflow's counts and status are written in the same transactions as its steps' changes.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class WorkflowStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class WorkflowOnFailure(models.TextChoices):
    CANCEL_DEPENDENTS = "cancel_dependents", "Cancel every step that depends on the failed one"
    CONTINUE = "continue", "Leave its dependents waiting (for a retry); other branches go on"


class Workflow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows", db_index=False
    )
    name = models.CharField(max_length=200)
    on_failure = models.CharField(
        max_length=20, choices=WorkflowOnFailure.choices, default=WorkflowOnFailure.CANCEL_DEPENDENTS
    )
    status = models.CharField(max_length=10, choices=WorkflowStatus.choices, default=WorkflowStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    steps_total = models.PositiveIntegerField(default=0)
    steps_succeeded = models.PositiveIntegerField(default=0)
    steps_failed = models.PositiveIntegerField(default=0)
    steps_cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(condition=Q(status__in=WorkflowStatus.values), name="workflow_status_valid"),
            models.CheckConstraint(
                condition=Q(on_failure__in=WorkflowOnFailure.values), name="workflow_on_failure_valid"
            ),
        ]
        indexes = [
            # The list's cursor order (-created_at, -id), per owner and per status.
            models.Index(fields=("owner", "-created_at", "-id"), name="workflow_owner_created"),
            models.Index(fields=("status", "-created_at", "-id"), name="workflow_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def steps_finished(self) -> int:
        return self.steps_succeeded + self.steps_failed + self.steps_cancelled

    @property
    def progress(self) -> int:
        """Finished steps / steps, in percent."""
        return 100 if not self.steps_total else int(100 * self.steps_finished / self.steps_total)


class WorkflowDependency(models.Model):
    """One edge of a workflow's DAG: ``child`` waits for ``parent`` to succeed."""

    parent = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="+", db_index=False)
    child = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="+", db_index=False)

    class Meta:
        constraints = [
            # Also the index of a finished parent's children (the release).
            models.UniqueConstraint(fields=("parent", "child"), name="workflowdependency_parent_child"),
        ]
        indexes = [
            # A step's parents (its results, a retry's count) and the cascade of a delete.
            models.Index(fields=("child",), name="workflowdependency_child"),
        ]

    def __str__(self) -> str:
        return f"{self.parent_id} -> {self.child_id}"
