"""Housekeeping run by celery beat, not by users (not in the catalog)."""

import dataclasses

from celery import shared_task

from ..services.recovery import job_sweep


@shared_task(name="jobs.tasks.maintenance_tasks.sweep_jobs", ignore_result=True, acks_late=False)
def sweep_jobs() -> dict:
    """Send unsent jobs and recover jobs whose worker died (see jobs.services.recovery)."""
    return dataclasses.asdict(job_sweep())
