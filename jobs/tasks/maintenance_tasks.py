"""Housekeeping run by celery beat, not by users (not in the catalog).

Each runs on the ``maintenance`` queue, consumed by its own small worker (the Procfile's
``maintenance`` process), so it is never queued behind user jobs that occupy every other worker
process. Dispatch, recovery and retention are separate tasks: a failure in one never stops another.
"""

from celery import shared_task

from taskhub.clock import database_now

from ..services.metrics import metrics_advance
from ..services.promotion import job_promote_waiting
from ..services.recovery import job_dispatch_due, job_recover_stale
from ..services.retention import job_purge_finished, job_purge_task_results, job_purge_workflows
from ..services.stats_rollup import stats_rollup_prune
from ..services.workers import worker_prune


@shared_task(name="jobs.tasks.maintenance_tasks.dispatch_jobs", ignore_result=True, acks_late=False)
def dispatch_jobs() -> int:
    """Send jobs whose message never reached the broker or was lost (see jobs.services.recovery)."""
    return job_dispatch_due()


@shared_task(name="jobs.tasks.maintenance_tasks.promote_jobs", ignore_result=True, acks_late=False)
def promote_jobs() -> int:
    """Send jobs that waited JOB_PRIORITY_MAX_WAIT on a lower queue to high_priority (see
    jobs.services.promotion): a steady stream of urgent/high jobs never starves them."""
    return job_promote_waiting()


@shared_task(name="jobs.tasks.maintenance_tasks.recover_jobs", ignore_result=True, acks_late=False)
def recover_jobs() -> list[str]:
    """Re-queue, fail or revoke running jobs whose worker died (see jobs.services.recovery)."""
    return job_recover_stale()


@shared_task(name="jobs.tasks.maintenance_tasks.purge_jobs", ignore_result=True, acks_late=False)
def purge_jobs() -> dict:
    """Delete finished jobs past their JOB_RETENTION_* age and expired task results (daily, by beat)."""
    return {**job_purge_finished(), "workflows": job_purge_workflows(), "task_results": job_purge_task_results()}


@shared_task(name="jobs.tasks.maintenance_tasks.rollup_metrics", ignore_result=True, acks_late=False)
def rollup_metrics() -> dict:
    """Count finished jobs and retries into the metrics totals and the stats rollup (see
    jobs.services.metrics), so that they stay current between scrapes; forget worker processes not
    seen for a day and the stats' minutes older than a day (and a margin)."""
    return {
        **metrics_advance(until_done=True),
        "workers_pruned": worker_prune(),
        "stats_minutes_pruned": stats_rollup_prune(now=database_now()),
    }
