"""The stats endpoint's query parameters (checked: anything else is a 400) and its answer's shape."""

from rest_framework import serializers

from ..catalog import catalog
from .collector import known_queues
from .stats import SLOWEST_DEFAULT, SLOWEST_MAX


class StatsQuerySerializer(serializers.Serializer):
    queue = serializers.ChoiceField(choices=(), required=False, help_text="Only this queue's jobs.")
    task = serializers.CharField(required=False, max_length=200, help_text="Only this task's jobs (name or alias).")
    slowest = serializers.IntegerField(
        required=False,
        default=SLOWEST_DEFAULT,
        min_value=1,
        max_value=SLOWEST_MAX,
        help_text=f"How many of the slowest tasks to list (1-{SLOWEST_MAX}).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = known_queues()

    def validate_task(self, value: str) -> str:
        if value not in catalog:
            raise serializers.ValidationError(f"Unknown task {value!r}: give a task name or alias of the catalog.")
        return catalog.get(value).name

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: [f"Unknown parameter; allowed: {', '.join(self.fields)}."] for name in unknown}
            )
        # DRF skips an empty optional query parameter; the schema says it is no value of its type.
        empty = sorted(name for name in self.fields if self.initial_data.get(name) == "")
        if empty:
            raise serializers.ValidationError({name: ["Give a value or leave the parameter out."] for name in empty})
        return attrs


class StatsQueueSerializer(serializers.Serializer):
    queue = serializers.CharField()
    pending = serializers.IntegerField(
        help_text="Pending now: waiting for a worker (not the workflow steps still waiting for their parents)."
    )
    running = serializers.IntegerField(help_text="Running now.")
    succeeded = serializers.IntegerField(help_text="Finished in the last day.")
    failed = serializers.IntegerField(help_text="Finished in the last day.")
    revoked = serializers.IntegerField(help_text="Finished in the last day.")
    expired = serializers.IntegerField(help_text="Finished in the last day: not started by their expires_at.")
    oldest_pending_seconds = serializers.FloatField(
        help_text="How long the oldest pending job that is due has waited (0 when none)."
    )


class StatsThroughputSerializer(serializers.Serializer):
    finished = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    revoked = serializers.IntegerField()
    expired = serializers.IntegerField(help_text="Not started by their expires_at.")
    per_minute = serializers.FloatField(help_text="Finished jobs per minute over the window.")
    failure_rate = serializers.FloatField(
        allow_null=True, help_text="failed / (succeeded + failed); null when no job ran to an outcome."
    )


class StatsMinuteSerializer(serializers.Serializer):
    minute = serializers.DateTimeField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    revoked = serializers.IntegerField()
    expired = serializers.IntegerField()


class StatsSlowTaskSerializer(serializers.Serializer):
    task = serializers.CharField()
    runs = serializers.IntegerField(help_text="Jobs of this task that ran and finished in the last day.")
    p50_seconds = serializers.FloatField(
        help_text="Median run time, estimated from the run-time histogram (the buckets of /metrics' "
        "taskhub_job_run_seconds) as Prometheus' histogram_quantile does: linear interpolation inside "
        "the bucket that holds the rank, then clamped to the shortest and longest run (one run: that run)."
    )
    p95_seconds = serializers.FloatField(help_text="95th percentile run time, estimated as p50_seconds.")


class StatsWorkerSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="node name:pid, as jobs name it (`worker`).")
    hostname = serializers.CharField()
    pid = serializers.IntegerField()
    queues = serializers.ListField(child=serializers.CharField())
    started_at = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    running = serializers.IntegerField(help_text="Jobs running in this process now.")


class StatsWorkflowsSerializer(serializers.Serializer):
    pending = serializers.IntegerField(help_text="Workflows none of whose steps has started yet.")
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="A step failed (other branches may still run).")
    cancelled = serializers.IntegerField()
    steps_waiting = serializers.IntegerField(
        help_text="Steps waiting for their parents to succeed: pending but not runnable, so in no queue's "
        "pending figure and not counted toward the active-job quota."
    )


class StatsSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(
        choices=("own", "all"), help_text="Your jobs, or everyone's (staff with jobs.view_job)."
    )
    generated_at = serializers.DateTimeField(help_text="The database's now, which every window ends at.")
    queues = StatsQueueSerializer(many=True)
    last_hour = StatsThroughputSerializer(help_text="The current minute and the 59 before it.")
    last_day = StatsThroughputSerializer(help_text="The current minute and the 1,439 before it.")
    finished_per_minute = StatsMinuteSerializer(many=True, help_text="The last 60 minutes and the current one.")
    slowest_tasks = StatsSlowTaskSerializer(many=True, help_text="By p95 run time over the last day.")
    workers = StatsWorkerSerializer(
        many=True, allow_null=True, help_text="Worker processes seen alive (staff only; null for other users)."
    )
    workflows = StatsWorkflowsSerializer(
        help_text="The workflows you may see (yours, or everyone's for staff with jobs.view_job) by status, "
        "kept until retention deletes them (as /metrics' taskhub_workflows gauge)."
    )
