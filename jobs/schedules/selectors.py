"""Reading schedules: the periodic tasks a user may see, and a schedule's latest jobs."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Left
from django_celery_beat.models import PeriodicTask

from accounts.models import User
from taskhub.errors import NotFound

from ..models import Job
from .fields import DESCRIPTION_MAX_LENGTH


def job_schedule_list_all() -> QuerySet[PeriodicTask]:
    """Every schedule (periodic tasks with an owner), as the operator sees them (commands without
    --user). The description is read cut to its limit (``description_shown``): one written before
    the limit, or by the admin, never loads megabytes into a web process or a response."""
    return (
        PeriodicTask.objects.filter(job_schedule__isnull=False)
        .select_related("job_schedule__owner", "interval", "crontab")
        .defer("description")
        .annotate(description_shown=Left("description", DESCRIPTION_MAX_LENGTH))
    )


def job_schedule_list(*, user: User) -> QuerySet[PeriodicTask]:
    """Schedules: the user's own, or all for staff."""
    schedules = job_schedule_list_all()
    return schedules if user.is_staff else schedules.filter(job_schedule__owner=user)


def job_schedule_get(*, user: User, schedule_id: int) -> PeriodicTask:
    """The schedule if the user may see it; another user's schedule is reported as not found."""
    schedule = job_schedule_list(user=user).filter(pk=schedule_id).first()
    if schedule is None:
        raise NotFound(f"Schedule {schedule_id} not found.")
    return schedule


def job_schedule_recent_jobs(*, periodic_task_id: int, limit: int = 10) -> list[Job]:
    """The schedule's latest jobs, newest first (its admin page lists them)."""
    return list(Job.objects.filter(schedule_id=periodic_task_id).order_by("-created_at", "-id")[:limit])


def job_schedule_with_last_run(schedules: QuerySet[PeriodicTask]) -> QuerySet[PeriodicTask]:
    """``schedules`` with their latest job's id, status and creation time (``last_job_id``,
    ``last_job_status``, ``last_job_created_at``; None before the first), as the schedule list
    shows them: one subquery per value, each reading the (schedule, ...) index."""
    latest = Job.objects.filter(schedule_id=OuterRef("pk")).order_by("-created_at", "-id")
    return schedules.annotate(
        last_job_id=Subquery(latest.values("id")[:1]),
        last_job_status=Subquery(latest.values("status")[:1]),
        last_job_created_at=Subquery(latest.values("created_at")[:1]),
    )
