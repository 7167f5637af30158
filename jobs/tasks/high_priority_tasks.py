"""Short, urgent work: notifications."""

from typing import Annotated

from django.conf import settings
from django.core.mail import EmailMessage

from taskhub.errors import ApplicationError

from ..models import JobPriority
from ..parameters import MaxItems
from .registry import job_task


def recipients_allowed(owner, arguments: dict) -> None:
    """Staff may notify anyone; other users only themselves and JOB_NOTIFY_ALLOWED_RECIPIENTS
    (addresses, or ``@domain``), so a signed-up account cannot make the server email strangers."""
    if owner.is_staff:
        return
    allowed = {address.lower() for address in settings.JOB_NOTIFY_ALLOWED_RECIPIENTS}
    if owner.email:
        allowed.add(owner.email.lower())
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


@job_task(
    name="jobs.tasks.high_priority_tasks.send_notification",
    aliases=("app.tasks.high_priority_tasks.send_notification", "send_notification"),
    priority=JobPriority.URGENT,
    time_limit=120,
    soft_time_limit=60,
    max_retries=5,
    retry_backoff=5.0,
    retry_on=(OSError,),
    authorize=recipients_allowed,
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
