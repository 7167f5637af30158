"""Short, urgent work: notifications."""

from typing import Annotated

from django.conf import settings
from django.core.mail import EmailMessage

from ..models import JobPriority
from ..parameters import MaxItems
from .registry import job_task


@job_task(
    name="jobs.tasks.high_priority_tasks.send_notification",
    aliases=("app.tasks.high_priority_tasks.send_notification", "send_notification"),
    priority=JobPriority.URGENT,
    time_limit=120,
    soft_time_limit=60,
    max_retries=5,
    retry_backoff=5.0,
    retry_on=(OSError,),
)
def send_notification(
    self,
    to: Annotated[list[str], MaxItems(100)],
    subject: Annotated[str, MaxItems(200)],
    body: Annotated[str, MaxItems(100_000)] = "",
) -> dict:
    """Send an email through Django's email backend (EMAIL_BACKEND). Connection errors are
    retried with backoff."""
    if not to or any("@" not in address for address in to):
        raise ValueError("to must list email addresses")
    self.progress(10, f"sending to {len(to)} recipient(s)")
    sent = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=to).send()
    return {"sent": sent, "to": to, "subject": subject}
