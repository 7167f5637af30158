"""Read queries for jobs. Visibility lives here: owners see their own jobs, staff see all."""

from django.db.models import QuerySet

from accounts.models import User
from taskhub.errors import NotFound

from .models import Job, JobEvent


def job_list(*, user: User) -> QuerySet[Job]:
    jobs = Job.objects.select_related("owner", "cancelled_by")
    return jobs if user.is_staff else jobs.filter(owner=user)


def job_get(*, user: User, job_id) -> Job:
    """The job if the user may see it; another user's job is reported as not found."""
    job = job_list(user=user).filter(id=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.")
    return job


def job_events(*, job: Job) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job).select_related("actor").order_by("at", "id")
