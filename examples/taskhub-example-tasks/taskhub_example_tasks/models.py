from django.db import models


class Tally(models.Model):
    """What one job counted: the job's id (taskhub's Job.id), what it counted, and the number."""

    job_id = models.UUIDField(null=True, blank=True, db_index=True)
    kind = models.CharField(max_length=20)
    value = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} = {self.value}"
