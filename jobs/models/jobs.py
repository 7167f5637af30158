"""The job row (the single source of truth about a job) and its timeline."""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from .querysets import JobQuerySet
from .statuses import (  # noqa: F401 - re-exported: jobs.models.jobs was their home
    ACTIVE,
    ACTIVE_STATUSES,
    DEAD_JOBS,
    MANUAL_RETRY_STATUSES,
    NOT_RUNNING,
    RUNNING,
    TERMINAL_STATUSES,
    UNSUCCESSFUL_STATUSES,
    JobStatus,
    either_side_of_running,
    status_in,
)


# --- Uniqueness rules (issue 21; jobs/services/uniqueness.py) ---
class UniquePolicy(models.TextChoices):
    """What a second create with the same unique key does (README "Unique jobs")."""

    REJECT = "reject", "Reject"
    REJECT_PENDING = "reject_pending", "Reject while pending"
    THROTTLE = "throttle", "Throttle"
    REPLACE = "replace", "Replace"
    DEBOUNCE = "debounce", "Debounce"
    KEEP_LATEST = "keep_latest", "Keep latest"
    CANCEL_RUNNING = "cancel_running", "Cancel running"


# The statuses in which each policy's job holds its key (``Job.unique_held``): the door clears the
# flag in the statement of the transition that leaves them, never on a timer. Throttle holds it in
# any status; a newer create takes it over once ``period`` has passed (uniqueness.py).
UNIQUE_HELD_WHILE = {
    UniquePolicy.REJECT: (JobStatus.PENDING, JobStatus.RUNNING),
    UniquePolicy.REJECT_PENDING: (JobStatus.PENDING,),
    UniquePolicy.THROTTLE: tuple(JobStatus.values),
    UniquePolicy.REPLACE: (JobStatus.PENDING,),
    UniquePolicy.DEBOUNCE: (JobStatus.PENDING,),
    UniquePolicy.KEEP_LATEST: (JobStatus.PENDING, JobStatus.RUNNING),
    UniquePolicy.CANCEL_RUNNING: (JobStatus.PENDING, JobStatus.RUNNING),
}


def unique_policies_holding(status: str) -> list[str]:
    """The policies whose jobs keep their key in ``status``."""
    return [policy.value for policy, held in UNIQUE_HELD_WHILE.items() if status in held]


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
    # No index of its own: job_owner_created (jobs not running) and job_pending start with owner, and
    # job_running holds the running ones (an index less to write per change). Deleting a user, rare,
    # pays for it: PostgreSQL's check of the foreign key reads the table (0026: no index holds every row).
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
    # Deadlines: no attempt starts after this; a pending job past it ends expired (services/_state.py).
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Never started after this time: expired.")
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
    # --- Uniqueness rules (issue 21) ---
    # NULL when absent (the unique index ignores it); per owner: one user's key never meets another's.
    unique_key = models.CharField(max_length=255, null=True, blank=True, help_text="The job's unique key.")  # noqa: DJ001
    unique_policy = models.CharField(max_length=20, blank=True, default="", choices=UniquePolicy.choices)
    unique_held = models.BooleanField(
        default=False, help_text="Whether this job holds its key now (cleared by the transition that releases it)."
    )
    duplicates = models.PositiveIntegerField(default=0, help_text="Creates deduplicated into this job.")
    unique_follow_up = models.JSONField(
        null=True, blank=True, help_text="keep_latest: the latest request that arrived while it ran."
    )
    # /metrics' taskhub_jobs_deduplicated_total (jobs/services/deduplicated.py); NULL until a duplicate.
    dedupe_counts = models.JSONField(
        null=True, blank=True, help_text='The duplicates deduplicated into this job by outcome ({"existing": 3}).'
    )
    # --- Concurrency keys (README "Concurrency keys", jobs/services/concurrency.py): at most
    # concurrency_limit running jobs with the same concurrency_key; NULL, not "", when absent.
    concurrency_key = models.CharField(  # noqa: DJ001
        max_length=255, null=True, blank=True, help_text="Jobs with the same key share concurrency_limit."
    )
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many jobs with its concurrency key run at once."
    )
    concurrency_waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="Pending: since when it waits for its concurrency key (cleared at the start)."
    )
    # --- end of concurrency keys
    # --- workflows (jobs/models/workflows.py): a step of a DAG; waits unsent while parents_remaining > 0 ---
    workflow = models.ForeignKey(
        "jobs.Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    workflow_step = models.CharField(max_length=100, blank=True, default="", help_text="The step's id in its workflow.")
    parents_remaining = models.PositiveIntegerField(
        default=0, help_text="Parent steps not succeeded yet: the step is waiting (not sent) until this is 0."
    )
    # --- end workflows ---
    created_via = models.CharField(
        max_length=10,
        blank=True,
        default="",
        choices=[("", "one create"), ("bulk", "a bulk create"), ("schedule", "a schedule")],
        help_text="How it was created, as its created line (derived from the row: jobs/timeline.py) says.",
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        # Urgent jobs overtake everyone's on high_priority: a right given to operators, not to anyone
        # who can register (a refused priority is a 403 naming this permission).
        permissions = [("submit_urgent", "Can submit jobs with priority urgent")]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=100), name="job_progress_0_100"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="job_status_valid"),
            models.CheckConstraint(condition=Q(priority__in=JobPriority.values), name="job_priority_valid"),
            models.UniqueConstraint(
                fields=("owner", "idempotency_key"),
                condition=Q(idempotency_key__isnull=False),
                name="job_owner_idempotency_key_unique",
            ),
            # Uniqueness rules: at most one holder of a key per owner (ON CONFLICT's arbiter).
            models.UniqueConstraint(
                fields=("owner", "unique_key"),
                condition=Q(unique_key__isnull=False, unique_held=True),
                name="job_unique_key_held",
            ),
            # A second beat started by mistake cannot fire a schedule twice for one slot.
            models.UniqueConstraint(
                fields=("schedule", "scheduled_for"),
                condition=Q(schedule__isnull=False, scheduled_for__isnull=False),
                name="job_schedule_slot_unique",
            ),
            models.CheckConstraint(
                condition=Q(concurrency_key__isnull=True, concurrency_limit__isnull=True)
                | Q(concurrency_key__isnull=False, concurrency_limit__gte=1),
                name="job_concurrency_key_limit",
            ),
        ]
        indexes = [
            # The list's cursor order is (-created_at, -id). Every index below holding an ordinary job
            # (pending -> running -> succeeded) is written again at each of its row versions (status
            # is in the partials' conditions, so no start or finish is a HOT update): an index costs every
            # job ~65-160 B of WAL per version it holds. So the list keeps two indexes in its order, a user's
            # (every non-staff list) and everyone's (staff, the admin, retention's succeeded jobs), and
            # the other filters (?task=, ?task_type=, ?status=succeeded) are served by the cursor scan
            # of one of them (migration 0020; bench/README "The index reshape"). Neither holds running
            # jobs (0026: two entries a job fewer), which a list reads from job_running beside them
            # (``NOT_RUNNING`` above: ``running_apart()``, ``either_side_of_running``).
            models.Index(fields=("owner", "-created_at", "-id"), condition=NOT_RUNNING, name="job_owner_created"),
            models.Index(fields=("-created_at", "-id"), condition=NOT_RUNNING, name="job_created"),
            # ?status= of the rare ends (and the dead jobs, retention of those statuses): an ordinary job
            # that succeeds is never in it. Pending jobs are in job_pending, running ones in job_running.
            models.Index(
                fields=("status", "-created_at", "-id"),
                condition=Q(status__in=UNSUCCESSFUL_STATUSES),
                name="job_unsuccessful_created",
            ),
            models.Index(
                fields=("schedule", "-created_at", "-id"),
                condition=Q(schedule__isnull=False),
                name="job_schedule_created",
            ),
            # The sweeper's scans: unsent pending jobs, and running jobs (few) for stale heartbeats.
            # No index contains progress or heartbeat_at, so those frequent writes stay HOT
            # updates in PostgreSQL (no index maintenance).
            # (Not parents_remaining > 0, which the sweeper leaves out too: a column of an index's condition would
            # make each decrement of a workflow step's count a non-HOT update, written into every index.)
            models.Index(
                fields=("created_at",),
                condition=Q(status=JobStatus.PENDING, dispatched_at__isnull=True),
                name="job_undispatched",
            ),
            # A workflow's steps (partial: most jobs are in none).
            models.Index(
                fields=("workflow", "workflow_step"), condition=Q(workflow__isnull=False), name="job_workflow"
            ),
            # The running jobs (fewer still): the sweeper's stale heartbeats, the running jobs per worker.
            models.Index(fields=("started_at",), condition=Q(status=JobStatus.RUNNING), name="job_running"),
            # Deadlines: the sweeper's scan for pending jobs past their expires_at (few have one).
            models.Index(
                fields=("expires_at",),
                condition=Q(status=JobStatus.PENDING, expires_at__isnull=False),
                name="job_pending_expires",
            ),
            # Metrics (jobs/observability/collector.py): the rollup reads finished jobs in finished_at order.
            models.Index(fields=("finished_at",), condition=Q(finished_at__isnull=False), name="job_finished"),
            # The pending jobs (few beside the finished ones), per owner: a quota's count of an owner's
            # active jobs reads its pending ones here and its running ones from job_running; a fair
            # share's count of running jobs reads job_running; the gauges count per status, queue and
            # task from the rows both find (``ACTIVE``: two terms, one per index). Owner only (0025:
            # with the queue and the task's dotted name its entries were 3 times as wide), and pending
            # only (0026: as job_active it held running jobs too, an entry more a job).
            models.Index(fields=("owner",), condition=Q(status=JobStatus.PENDING), name="job_pending"),
            # The list's ?unique_key= filter.
            models.Index(
                fields=("unique_key", "-created_at", "-id"),
                condition=Q(unique_key__isnull=False),
                name="job_unique_key_created",
            ),
            # keep_latest: the sweep's scan for finished jobs still holding a request (only jobs holding one are in it).
            models.Index(
                fields=("finished_at",), condition=Q(unique_follow_up__isnull=False), name="job_follow_up_waiting"
            ),
            # Concurrency keys: the start's count of a key's running jobs (only keyed running jobs are in
            # it: tiny), and the list's ?concurrency_key= / the release of a key's waiting jobs.
            models.Index(
                fields=("concurrency_key",),
                condition=Q(status=JobStatus.RUNNING, concurrency_key__isnull=False),
                name="job_concurrency_running",
            ),
            models.Index(
                fields=("concurrency_key", "-created_at", "-id"),
                condition=Q(concurrency_key__isnull=False),
                name="job_concurrency_created",
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
    FAIR_SHARE = "fair_share", "Waiting for its owner's share of the workers"
    EXPIRED = "expired", "Expired: not started by its deadline"
    PROMOTED = "promoted", "Promoted: waited too long on its queue"
    DEDUPLICATED = "deduplicated", "Deduplicated"
    CONCURRENCY = "concurrency", "Waiting for its concurrency key"


# Timeline kinds that send a job round again: an automatic retry, a re-queue after worker loss, an operator's retry.
RETRY_EVENT_KINDS = (JobEventKind.RETRY_SCHEDULED, JobEventKind.REQUEUED, JobEventKind.RETRIED)


class JobEvent(models.Model):
    """One line of a job's timeline: a transition or an operator action, with who and when."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", db_index=False)
    # The database's clock unless a line names its time (a created line: the row's created_at): a
    # host whose clock is off writes its lines in order with the row's own times (``jobs.timeline``).
    at = models.DateTimeField(db_default=Now())
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
        if not isinstance(self.at, datetime):  # the database's default, written by the INSERT
            return f"{self.job_id} {self.kind} (not saved yet)"
        at = timezone.localtime(self.at)  # as the admin shows times: local, the zone named
        return f"{self.job_id} {self.kind} at {at:%Y-%m-%d %H:%M:%S} {at.tzname()}"
