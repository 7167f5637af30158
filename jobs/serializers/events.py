"""A job's timeline lines (GET /api/v1/jobs/{id}/events/)."""

from rest_framework import serializers

from ..models import JobEvent
from ..redaction import strip_server_paths
from .job import shows_server_paths


class JobEventSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(
        read_only=True,
        help_text="The line's id. The ordinary lines read from the job's row have fixed ids: -1 created, "
        "-2 started, -3 succeeded (of its current run); stored lines have positive ids.",
    )
    actor = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="The user who acted; null: the system."
    )

    class Meta:
        model = JobEvent
        fields = ("id", "at", "kind", "from_status", "to_status", "actor", "actor_label", "message", "data")
        read_only_fields = fields

    def to_representation(self, event: JobEvent) -> dict:
        data = super().to_representation(event)
        if not shows_server_paths(self.context):
            data["message"] = strip_server_paths(data["message"])
            if isinstance(data["data"], dict):
                data["data"] = {
                    key: strip_server_paths(value) if isinstance(value, str) else value
                    for key, value in data["data"].items()
                }
        return data
