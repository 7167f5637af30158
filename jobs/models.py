"""The job row (the single source of truth about a job) and its timeline."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REVOKED = "revoked", "Revoked"


# Named groups of statuses, used everywhere a rule depends on them.
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REVOKED)
# An operator may run these again (manual retry); automatic retries happen from running.
MANUAL_RETRY_STATUSES = (JobStatus.FAILED, JobStatus.REVOKED)


class JobPriority(models.TextChoices):
    URGENT = "urgent", "Urgent"
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"
    LOW = "low", "Low"


# The spec's queues: urgent and high share high_priority, which workers always poll first.
PRIORITY_QUEUES = {
    JobPriority.URGENT: "high_priority",
    JobPriority.HIGH: "high_priority",
    JobPriority.NORMAL: "default",
    JobPriority.LOW: "low_priority",
}


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="Also the Celery task id.")
    # No index of its own: job_owner_created starts with owner (an index less to write per change).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs", db_index=False)
    name = models.CharField(max_length=200)
    task_type = models.CharField(max_length=100, blank=True, default="", help_text="Free label for grouping.")
    celery_task_name = models.CharField(max_length=200, help_text="The registered task that runs this job.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    priority = models.CharField(max_length=10, choices=JobPriority.choices, default=JobPriority.NORMAL)
    queue = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_meta = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    error_type = models.CharField(
        max_length=200, blank=True, default="", help_text="The error's exception class (metrics count failures by it)."
    )
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(
        default=0,
        help_text="Retries so far, automatic and manual: 0 on the first run. The current (or last) attempt is "
        "number attempts + 1; messages, the admin and the API count attempts from 1 that way.",
    )
    max_retries = models.PositiveIntegerField(default=0, help_text="Automatic retries allowed.")
    run_at = models.DateTimeField(null=True, blank=True, help_text="Not before this time (also set by retry backoff).")
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="When the message reached the broker.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    worker = models.CharField(max_length=255, blank=True, default="")
    # NULL, not "", when absent: the unique constraint must not treat absent keys as equal.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # Indexed below with the list's order (partial: most jobs have no schedule), not by the FK.
    schedule = models.ForeignKey(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,
        help_text="The schedule that created this job.",
    )
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The schedule's slot this job was fired for: one job per slot."
    )

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=100), name="job_progress_0_100"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="job_status_valid"),
            models.CheckConstraint(condition=Q(priority__in=JobPriority.values), name="job_priority_valid"),
            models.UniqueConstraint(
                fields=("owner", "idempotency_key"),
                condition=Q(idempotency_key__isnull=False),
                name="job_owner_idempotency_key_unique",
            ),
            # A second beat started by mistake cannot fire a schedule twice for one slot.
            models.UniqueConstraint(
                fields=("schedule", "scheduled_for"),
                condition=Q(schedule__isnull=False, scheduled_for__isnull=False),
                name="job_schedule_slot_unique",
            ),
        ]
        indexes = [
            # The list's cursor order is (-created_at, -id); each filter has an index in that order.
            models.Index(fields=("owner", "-created_at", "-id"), name="job_owner_created"),
            models.Index(fields=("status", "-created_at", "-id"), name="job_status_created"),
            models.Index(fields=("celery_task_name", "-created_at", "-id"), name="job_task_created"),
            models.Index(fields=("task_type", "-created_at", "-id"), name="job_type_created"),
            models.Index(fields=("-created_at", "-id"), name="job_created"),
            models.Index(
                fields=("schedule", "-created_at", "-id"),
                condition=Q(schedule__isnull=False),
                name="job_schedule_created",
            ),
            # The sweeper's scans: unsent pending jobs, and running jobs (few) for stale heartbeats.
            # No index contains progress or heartbeat_at, so those frequent writes stay HOT
            # updates in PostgreSQL (no index maintenance).
            models.Index(
                fields=("created_at",),
                condition=Q(status=JobStatus.PENDING, dispatched_at__isnull=True),
                name="job_undispatched",
            ),
            models.Index(fields=("started_at",), condition=Q(status=JobStatus.RUNNING), name="job_running"),
            # Per-user quotas count an owner's active jobs (jobs/services/_quotas.py).
            models.Index(fields=("owner",), condition=Q(status__in=ACTIVE_STATUSES), name="job_owner_active"),
            # Metrics (jobs/metrics.py): the rollup reads finished jobs in finished_at order, and the
            # gauges count active jobs per status, queue and task from this small index alone.
            models.Index(fields=("finished_at",), condition=Q(finished_at__isnull=False), name="job_finished"),
            models.Index(
                fields=("status", "queue", "celery_task_name"),
                condition=Q(status__in=ACTIVE_STATUSES),
                name="job_active_queue_task",
            ),
            # Deleting a user clears cancelled_by: few jobs have one, and only they are in this index.
            models.Index(fields=("cancelled_by",), condition=Q(cancelled_by__isnull=False), name="job_cancelled_by"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class JobEventKind(models.TextChoices):
    CREATED = "created", "Created"
    DISPATCHED_LATE = "dispatched", "Sent by the sweeper"
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    RETRY_SCHEDULED = "retry_scheduled", "Automatic retry scheduled"
    CANCEL_REQUESTED = "cancel_requested", "Cancel requested"
    REVOKED = "revoked", "Revoked"
    RETRIED = "retried", "Retried by an operator"
    REQUEUED = "requeued", "Re-queued after worker loss"
    HELD = "held", "Held: its queue is paused"
    RATE_LIMITED = "rate_limited", "Deferred by a rate limit"


# Timeline kinds that send a job round again: an automatic retry, a re-queue after worker loss, an operator's retry.
RETRY_EVENT_KINDS = (JobEventKind.RETRY_SCHEDULED, JobEventKind.REQUEUED, JobEventKind.RETRIED)


class JobEvent(models.Model):
    """One line of a job's timeline: a transition or an operator action, with who and when."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", db_index=False)
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=JobEventKind.choices)
    from_status = models.CharField(max_length=10, blank=True, default="")
    to_status = models.CharField(max_length=10, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    actor_label = models.CharField(max_length=255, blank=True, default="", help_text="Who or what acted.")
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("at", "id")
        indexes = [
            # Also the foreign key's index (job first); actor is set only on a person's action.
            models.Index(fields=("job", "at"), name="jobevent_job_at"),
            models.Index(fields=("actor",), condition=Q(actor__isnull=False), name="jobevent_actor"),
            # The metrics rollup counts retries by the time they happened; few events are retries.
            models.Index(fields=("at",), condition=Q(kind__in=RETRY_EVENT_KINDS), name="jobevent_retry_at"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"


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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(priority__in=JobPriority.values), name="jobschedule_priority_valid"),
        ]

    def __str__(self) -> str:
        return f"schedule {self.periodic_task_id} of {self.owner_id}"


class WorkerHeartbeat(models.Model):
    """A worker process seen alive: its watchdog thread stamps ``last_seen`` (the database's clock)
    every ``JOB_HEARTBEAT_INTERVAL``; alive = seen within ``JOB_STALE_AFTER``. A process that stops
    cleanly removes its row; a killed one's row goes stale (and is pruned after a day)."""

    hostname = models.CharField(max_length=255, help_text="The Celery worker's node name, e.g. celery@host.")
    pid = models.PositiveIntegerField(help_text="The process that runs jobs (a pool process, or the worker itself).")
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=("hostname", "pid"), name="workerheartbeat_hostname_pid")]
        indexes = [models.Index(fields=("last_seen",), name="workerheartbeat_last_seen")]

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"

    @property
    def label(self) -> str:
        """As jobs name the process that runs them (``Job.worker``)."""
        return f"{self.hostname}:{self.pid}"


# Histogram buckets (seconds) of the metrics rollup: a job's wait in its queue, a task's run. Changing
# them later keeps the old buckets' totals, which stay exposed (cumulative buckets are all that
# histogram_quantile needs).
METRIC_BUCKETS = {
    "wait_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600),
    "run_seconds": (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
}


class MetricTotal(models.Model):
    """One monotonic figure of the metrics rollup (jobs/services/metrics.py): a counter or a histogram
    bucket, by its labels. Only ever increased, so it survives restarts, deletes and retention."""

    metric = models.CharField(max_length=50)
    task = models.CharField(max_length=200, blank=True, default="")
    queue = models.CharField(max_length=50, blank=True, default="")
    status = models.CharField(max_length=10, blank=True, default="")
    label = models.CharField(max_length=200, blank=True, default="", help_text="Exception class, retry kind or le.")
    value = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("metric", "task", "queue", "status", "label"), name="metrictotal_labels")
        ]

    def __str__(self) -> str:
        return f"{self.metric}{{{self.task},{self.queue},{self.status},{self.label}}} {self.value:g}"


class MetricCursor(models.Model):
    """How far the rollup has read one source of rows (finished jobs, retry events)."""

    source = models.CharField(max_length=20, primary_key=True)
    watermark = models.DateTimeField(null=True, blank=True, help_text="The latest time of a row counted.")
    stats_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Finished jobs only: the stats rollup (JobStatsMinute) holds every job counted that finished "
        "after this; empty until the rollup is built from the rows, at the first pass.",
    )

    def __str__(self) -> str:
        return f"{self.source} at {self.watermark}"


def run_bucket_field(bound: float) -> str:
    """The ``JobStatsMinute`` column of the run-time bucket whose upper bound is ``bound``."""
    return "run_le_inf" if bound == float("inf") else "run_le_" + format(bound, "g").replace(".", "_")


# The run-time histogram of JobStatsMinute: one column per bucket of /metrics' run_seconds (not
# cumulative: jobs whose run fell in (previous bound, bound]), then the jobs past the last bound.
STATS_RUN_BOUNDS = (*METRIC_BUCKETS["run_seconds"], float("inf"))
STATS_RUN_FIELDS = tuple(run_bucket_field(bound) for bound in STATS_RUN_BOUNDS)


class JobStatsMinute(models.Model):
    """Jobs that finished in one minute, per owner, queue and task: what ``GET /api/v1/stats/`` reads
    instead of the job rows (jobs/stats.py). Advanced with the metrics' totals by the same pass
    (jobs/services/stats_rollup.py), so each finished job is counted once; kept for a day and a margin.
    The run-time bucket columns (``run_le_*``, one per /metrics bucket) are added below the class."""

    minute = models.DateTimeField(help_text="The minute the jobs finished in (its start).")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    queue = models.CharField(max_length=50)
    task = models.CharField(max_length=200, help_text="The registered task (celery_task_name).")
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    revoked = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # Staff read a range of minutes (this index); other users their own rows (the next one).
            models.UniqueConstraint(fields=("minute", "owner", "queue", "task"), name="jobstatsminute_key"),
        ]
        indexes = [models.Index(fields=("owner", "minute"), name="jobstatsminute_owner")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.owner_id} {self.queue} {self.task}"


for _bound, _field in zip(STATS_RUN_BOUNDS, STATS_RUN_FIELDS, strict=True):
    JobStatsMinute.add_to_class(
        _field,
        models.PositiveIntegerField(
            default=0,
            help_text=f"Jobs whose run took at most {_bound:g} s (more than the bound before)."
            if _bound != float("inf")
            else "Jobs whose run took longer than the last bound.",
        ),
    )
del _bound, _field


class MetricSeen(models.Model):
    """A row the rollup counted near its watermark: rows are re-read for a while behind the watermark
    (clocks of other hosts, late commits), and these keep them from being counted twice."""

    source = models.CharField(max_length=20)
    key = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=("source", "key", "at"), name="metricseen_source_key_at")]
        indexes = [models.Index(fields=("source", "at"), name="metricseen_source_at")]

    def __str__(self) -> str:
        return f"{self.source} {self.key} at {self.at}"


# --- Queue control: pause and rate limits (jobs/services/gates.py enforces them, queues.py changes them) ---

# A rate limit allows at most ``limit`` starts in any ``period`` seconds; each start takes one of
# ``limit`` slot rows, so both are bounded (the slots of one limit are one small index range).
RATE_LIMIT_MAX = 10_000
RATE_PERIOD_MAX = 86_400


class QueueControl(models.Model):
    """Whether a queue (one of JOB_QUEUES) is paused: stored, so a pause survives every restart.

    A paused queue's jobs stay pending and are not sent; a message already in the broker is
    refused at the start and its job held (``JobEventKind.HELD``) until the queue is resumed.
    Rows are made on first use (``jobs.services.queues``); a queue without one is not paused.
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
