"""Housekeeping run by celery beat, not by users (not in the catalog)."""

import dataclasses

from celery import shared_task

from ..services.recovery import job_sweep
from ..services.retention import job_purge_finished, job_purge_task_results


@shared_task(name="jobs.tasks.maintenance_tasks.sweep_jobs", ignore_result=True, acks_late=False)
def sweep_jobs() -> dict:
    """Send unsent jobs and recover jobs whose worker died (see jobs.services.recovery)."""
    return dataclasses.asdict(job_sweep())


@shared_task(name="jobs.tasks.maintenance_tasks.purge_jobs", ignore_result=True, acks_late=False)
def purge_jobs() -> dict:
    """Delete finished jobs past their JOB_RETENTION_* age and expired task results (daily, by beat)."""
    return {**job_purge_finished(), "task_results": job_purge_task_results()}
