"""The task catalog's entries (GET /api/v1/task-catalog/)."""

from rest_framework import serializers


class CatalogEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    parameters = serializers.DictField(
        help_text="JSON schema of the keyword arguments; positional order in x-positional-order."
    )
    default_priority = serializers.CharField()
    queue = serializers.CharField()
    soft_time_limit = serializers.IntegerField(
        allow_null=True,
        help_text="Seconds; SoftTimeLimitExceeded is raised in the task then (in a threads-pool worker, once it "
        "runs Python code again); null: none.",
    )
    time_limit = serializers.IntegerField(
        help_text="Seconds; a job still running then ends failed (error type TimeLimitExceeded, no automatic "
        "retry) and its work is stopped, in every worker pool."
    )
    max_retries = serializers.IntegerField()
    retry_backoff = serializers.FloatField()
    retry_backoff_max = serializers.FloatField()
    cancellable = serializers.BooleanField(help_text="Stops cooperatively at progress calls when cancelled.")
    staff_only = serializers.BooleanField()
    concurrency = serializers.DictField(
        allow_null=True,
        help_text='The concurrency rule every job of the task gets unless its request names one: {"key", "limit"}; '
        "the key may name the job's arguments, e.g. tenant-{tenant_id}.",
    )
    package = serializers.CharField(
        help_text='Where the task comes from: "taskhub" (built in), or the distribution name of the installed task '
        "package that declares it (README, Writing a task package)."
    )
    package_version = serializers.CharField(
        allow_null=True, help_text="The task package's installed version; null for taskhub's own tasks."
    )
