from django.contrib.auth.models import AbstractUser
from django.db import models

from .usernames import skeleton


class User(AbstractUser):
    """taskhub's user: Django's user with a unique (case-insensitive) email, verified before it is
    used (``pending_email`` until then), and one service account (the owner of django.tasks jobs)."""

    email = models.EmailField("email address", unique=True)
    email_verified = models.BooleanField(
        default=False, help_text="The owner proved they read this address (the link of a verification mail)."
    )
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # None (not "") when nothing is pending: "" is no e-mail address, which the API's schema says it is.
    pending_email = models.EmailField(  # noqa: DJ001
        null=True,
        blank=True,
        default=None,
        help_text="An address asked for and not verified yet; it replaces email once verified.",
    )
    is_service_account = models.BooleanField(
        default=False,
        editable=False,
        help_text="The account that owns jobs enqueued on no person's behalf (django.tasks); it never signs in.",
    )
    # What the username looks like (accounts/usernames.py): sign-up and renames refuse a name that
    # looks like another user's. Derived from username in save(); never set it by hand.
    username_skeleton = models.CharField(max_length=1000, default="", editable=False, db_index=True)
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
            models.UniqueConstraint(
                fields=["is_service_account"],
                condition=models.Q(is_service_account=True),
                name="accounts_user_one_service_account",
            ),
        ]

    def save(self, *args, **kwargs):
        """Keep ``username_skeleton`` in step with ``username`` (a derived column, as a normalised
        copy; ``QuerySet.update(username=...)`` would skip it, and nothing in taskhub does that)."""
        self.username_skeleton = skeleton(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:
            kwargs["update_fields"] = {*update_fields, "username_skeleton"}
        super().save(*args, **kwargs)
