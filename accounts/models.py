from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """taskhub's user: Django's user with a unique (case-insensitive) email."""

    email = models.EmailField("email address", unique=True)
    # Per-user job quotas (jobs/services/_quotas.py): empty = the JOB_QUOTA_* setting, 0 = no limit.
    max_active_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many pending or running jobs. Empty: the JOB_QUOTA_MAX_ACTIVE setting; 0: no limit.",
    )
    max_jobs_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many new jobs in any 60 seconds. Empty: the JOB_QUOTA_PER_MINUTE setting; 0: no limit.",
    )
    max_running_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many running jobs at once (more wait their turn). Empty: the JOB_QUOTA_MAX_RUNNING "
        "setting (by default half of the worker processes alive); 0: no limit.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="accounts_user_email_ci_unique"),
        ]
