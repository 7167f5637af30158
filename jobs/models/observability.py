"""What observability keeps: worker processes seen alive, metric totals and the per-minute stats rollup."""

from django.conf import settings
from django.db import models


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
    instead of the job rows (jobs/observability/stats.py). Advanced with the metrics' totals by the same pass
    (jobs/services/stats_rollup.py), so each finished job is counted once; kept for a day and a margin.
    The run-time bucket columns (``run_le_*``, one per /metrics bucket) are added below the class."""

    minute = models.DateTimeField(help_text="The minute the jobs finished in (its start).")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    queue = models.CharField(max_length=50)
    task = models.CharField(max_length=200, help_text="The registered task (celery_task_name).")
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    revoked = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    # The shortest and longest run counted in the buckets: the percentiles interpolated inside a
    # bucket are clamped to them (a few runs would otherwise read as the bucket's width).
    run_min = models.DurationField(null=True, blank=True, help_text="The shortest run counted; empty: none ran.")
    run_max = models.DurationField(null=True, blank=True, help_text="The longest run counted; empty: none ran.")

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
