"""Housekeeping run by celery beat, not by users (not in the catalog)."""

import dataclasses

from celery import shared_task

from .. import services


@shared_task(name="jobs.tasks.maintenance_tasks.sweep_jobs", ignore_result=True, acks_late=False)
def sweep_jobs() -> dict:
    """Send unsent jobs and recover jobs whose worker died (see services.jobs_sweep)."""
    return dataclasses.asdict(services.jobs_sweep())
