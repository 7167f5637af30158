"""Short, urgent work: notifications."""

from datetime import timedelta
from typing import Annotated

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from taskhub.errors import ApplicationError

from ..models import JobPriority
from ..parameters import MaxItems
from ..selectors import notification_recipients_since
from .registry import job_task


def recipients_allowed(owner, arguments: dict) -> None:
    """Staff may notify anyone; other users only themselves and JOB_NOTIFY_ALLOWED_RECIPIENTS
    (addresses, or ``@domain``), so a signed-up account cannot make the server email strangers."""
    if owner.is_staff:
        return
    allowed = {address.lower() for address in settings.JOB_NOTIFY_ALLOWED_RECIPIENTS}
    own = owner.email.lower() if owner.email else ""
    if own and owner.email_verified:
        allowed.add(own)
    elif own in {address.lower() for address in arguments["to"]} and own not in allowed:
        message = f"Your address {owner.email} is not verified yet: verify it (POST /api/v1/users/me/email/verify/)."
        raise ApplicationError(f"kwargs.to: {message}", code="email_unverified", fields={"kwargs": [message]})
    refused = [
        address
        for address in arguments["to"]
        if address.lower() not in allowed and "@" + address.rpartition("@")[2].lower() not in allowed
    ]
    if refused:
        listed = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        message = f"You may send notifications only to your own address or allowed recipients, not to {listed}."
        raise ApplicationError(
            f"kwargs.to: {message}", code="permission_denied", status_code=403, fields={"kwargs": [message]}
        )


def recipients_within_budget(owner, calls: list[dict]) -> None:
    """At most JOB_NOTIFY_DAILY_LIMIT recipients a user in any 24 hours (staff exempt; 0: no
    limit), counted from the user's send_notification jobs, with those of this request."""
    limit = settings.JOB_NOTIFY_DAILY_LIMIT
    if owner.is_staff or not limit:
        return
    asked = sum(len(call["to"]) for call in calls)
    used = notification_recipients_since(
        owner_id=owner.pk, task_name=NOTIFY_TASK, since=timezone.now() - timedelta(hours=24)
    )
    if used + asked > limit:
        raise ApplicationError(
            f"kwargs.to: at most {limit} notification recipients per user in 24 hours (JOB_NOTIFY_DAILY_LIMIT); "
            f"{used} used, {asked} asked.",
            code="notify_daily_limit",
            status_code=429,
        )


NOTIFY_TASK = "jobs.tasks.high_priority_tasks.send_notification"


@job_task(
    name=NOTIFY_TASK,
    aliases=("app.tasks.high_priority_tasks.send_notification", "send_notification"),
    priority=JobPriority.URGENT,
    time_limit=120,
    soft_time_limit=60,
    max_retries=5,
    retry_backoff=5.0,
    retry_on=(OSError,),
    authorize=recipients_allowed,
    budget=recipients_within_budget,
)
def send_notification(
    self,
    to: Annotated[list[str], MaxItems(100)],
    subject: Annotated[str, MaxItems(200)],
    body: Annotated[str, MaxItems(100_000)] = "",
) -> dict:
    """Send an email through Django's email backend (EMAIL_BACKEND). Connection errors are
    retried with backoff. Staff may notify anyone; other users themselves and the allowed
    recipients (JOB_NOTIFY_ALLOWED_RECIPIENTS)."""
    if not to or any("@" not in address for address in to):
        raise ValueError("to must list email addresses")
    self.progress(10, f"sending to {len(to)} recipient(s)")
    sent = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=to).send()
    return {"sent": sent, "to": to, "subject": subject}
