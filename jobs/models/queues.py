"""Queue control: pause and rate limits (``services/gates.py`` enforces them, ``queues/services.py`` changes them)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

RATE_LIMIT_MAX = 10_000
RATE_PERIOD_MAX = 86_400


class QueueControl(models.Model):
    """Whether a queue (one of JOB_QUEUES) is paused: stored, so a pause survives every restart.

    A paused queue's jobs stay pending and are not sent; a message already in the broker is
    refused at the start and its job held (``JobEventKind.HELD``) until the queue is resumed.
    Rows are made on first use (``jobs.queues.services``); a queue without one is not paused.
    """

    name = models.CharField(max_length=50, primary_key=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True, default="", help_text="Why it was paused.")

    class Meta:
        ordering = ("name",)
        verbose_name = "queue"

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'running'})"


class RateLimitScope(models.TextChoices):
    QUEUE = "queue", "Queue"
    TASK = "task", "Task"


class RateLimit(models.Model):
    """At most ``limit`` job starts in any ``period`` seconds, across all workers, for one queue or
    one catalog task (its canonical name). A job under two limits (its queue's and its task's)
    needs a slot of each."""

    scope = models.CharField(max_length=10, choices=RateLimitScope.choices)
    name = models.CharField(max_length=200, help_text="The queue, or the task's canonical name.")
    limit = models.PositiveIntegerField(help_text=f"Starts allowed per period (1-{RATE_LIMIT_MAX}).")
    period = models.PositiveIntegerField(help_text=f"Seconds (1-{RATE_PERIOD_MAX}).")
    backlog_until = models.DateTimeField(
        null=True, blank=True, help_text="When the last job deferred by this limit is due: the next one goes after it."
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("scope", "name")
        constraints = [
            models.UniqueConstraint(fields=("scope", "name"), name="ratelimit_scope_name_unique"),
            models.CheckConstraint(condition=Q(scope__in=RateLimitScope.values), name="ratelimit_scope_valid"),
            models.CheckConstraint(condition=Q(limit__gte=1, limit__lte=RATE_LIMIT_MAX), name="ratelimit_limit_range"),
            models.CheckConstraint(
                condition=Q(period__gte=1, period__lte=RATE_PERIOD_MAX), name="ratelimit_period_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.name}: {self.limit} per {self.period}s"


class RateLimitSlot(models.Model):
    """One of a rate limit's ``limit`` slots: when it last let a job start. A start takes a slot
    last used at least ``period`` seconds before it, so no window of ``period`` seconds holds
    more than ``limit`` starts."""

    rate_limit = models.ForeignKey(RateLimit, on_delete=models.CASCADE, related_name="slots", db_index=False)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=("rate_limit", "at"), name="ratelimitslot_limit_at")]

    def __str__(self) -> str:
        return f"slot of {self.rate_limit_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class QueueControlAction(models.TextChoices):
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    LIMIT_SET = "limit_set", "Rate limit set"
    LIMIT_CLEARED = "limit_cleared", "Rate limit cleared"


class QueueControlSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Command"


class QueueControlChange(models.Model):
    """The audit trail of queue control: every pause, resume, rate limit set or cleared, with
    who, when and from where. Written in the same transaction as the change."""

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=255, help_text="Who acted (kept when the user is deleted).")
    source = models.CharField(max_length=10, choices=QueueControlSource.choices)
    action = models.CharField(max_length=20, choices=QueueControlAction.choices)
    scope = models.CharField(max_length=10, choices=RateLimitScope.choices)
    name = models.CharField(max_length=200, help_text="The queue, or the task's canonical name.")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ("-at", "-id")
        indexes = [models.Index(fields=("scope", "name", "-at"), name="queuecontrolchange_target")]

    def __str__(self) -> str:
        return f"{self.action} {self.scope} {self.name} by {self.actor_label} at {self.at:%Y-%m-%d %H:%M:%S}"
