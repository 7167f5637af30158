"""A job's statuses, the named groups every rule depends on, and the terms that say a status in a way
PostgreSQL's partial indexes can answer (running jobs are read apart: migration 0026)."""

import functools
import operator

from django.db import models
from django.db.models import Q


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"  # not started by its expires_at: never run (README "Deadlines")


# Named groups of statuses, used everywhere a rule depends on them.
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REVOKED, JobStatus.EXPIRED)
# An operator may run these again (manual retry); automatic retries happen from running. An
# operator's retry of an expired job clears its deadline (jobs/services/operations.py).
MANUAL_RETRY_STATUSES = (JobStatus.FAILED, JobStatus.REVOKED, JobStatus.EXPIRED)
# The ends other than success: few jobs, so their list filter has an index that ordinary jobs never enter.
UNSUCCESSFUL_STATUSES = (JobStatus.FAILED, JobStatus.REVOKED, JobStatus.EXPIRED)
# Dead jobs (Sidekiq's Dead set): failed with every automatic retry used. Only an operator's
# retry runs them again; they are one filter away (API ?dead=true, the admin's "Dead jobs" page)
# and kept JOB_RETENTION_DEAD.
DEAD_JOBS = Q(status=JobStatus.FAILED, attempts__gte=models.F("max_retries"))

# --- Running jobs are read apart (issue 20, migration 0026) ---
# A job's start is never a HOT update (status is in the indexes' conditions), so every index whose
# condition holds for the running version gets an entry for it. The list orders (job_owner_created,
# job_created) and the pending jobs' index (job_pending) leave running jobs out: three B-tree entries
# fewer per job. The running jobs (at most the workers' slots) are in job_running. A query that would
# read them from those indexes says so: ``either_side_of_running`` for a scan or a count, a queryset's
# ``running_apart()`` for a page in order (two branches merged: ``JobQuerySet``).
RUNNING = Q(status=JobStatus.RUNNING)
NOT_RUNNING = ~RUNNING


def status_in(statuses) -> Q:
    """``status__in=statuses`` as one term per status: PostgreSQL reads a partial index of one status
    (job_pending, job_running) only for a term of its own, never for a ``status IN (...)``."""
    terms = [Q(status=status) for status in statuses]
    return functools.reduce(operator.or_, terms) if terms else Q(status__in=[])


ACTIVE = status_in(ACTIVE_STATUSES)


def either_side_of_running(condition: Q) -> Q:
    """``condition``, said so that the planner can read it from the indexes that leave running jobs out
    and from ``job_running``: the same jobs as ``condition`` alone."""
    return (condition & NOT_RUNNING) | (condition & RUNNING)
