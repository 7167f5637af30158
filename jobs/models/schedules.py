"""Who a periodic job runs as: the row django-celery-beat's PeriodicTask lacks."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .jobs import JobPriority


class JobSchedule(models.Model):
    """Who a periodic job runs as, and at which priority.

    django-celery-beat's ``PeriodicTask`` stores the task, its arguments and the interval or
    crontab, but has no owner: this row adds one, one-to-one, sharing the periodic task's id.
    Every firing of a catalog task creates a ``Job`` owned by ``owner``.
    """

    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", primary_key=True, on_delete=models.CASCADE, related_name="job_schedule"
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="job_schedules")
    priority = models.CharField(max_length=10, choices=JobPriority.choices, default=JobPriority.NORMAL)
    # Deadlines: each fired job's expires_at is its firing time plus this (not PeriodicTask.expires,
    # which ends the schedule itself).
    expires_in = models.PositiveIntegerField(
        null=True, blank=True, help_text="Each job's deadline, in seconds from its firing; empty: none."
    )
    # Each firing's uniqueness rule (jobs/unique.py), e.g. {"policy": "reject"}: skip a firing while
    # the last one is still pending or running.
    unique = models.JSONField(null=True, blank=True, help_text='Each job\'s uniqueness rule (README "Unique jobs").')
    # Each job's concurrency key (README "Concurrency keys"): NULL, the task's own rule if any.
    concurrency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(priority__in=JobPriority.values), name="jobschedule_priority_valid"),
        ]

    def __str__(self) -> str:
        return f"schedule {self.periodic_task_id} of {self.owner_id}"
