"""Retention: delete finished jobs (with their timelines) and expired Celery result rows.

Used by ``manage.py cleanup_jobs`` and by beat's daily ``purge_jobs`` task. A workflow's steps are
never deleted one by one: a finished workflow goes whole, with its steps (``job_purge_workflows``). Deletes go in
batches so that memory and lock times stay flat on tables of millions of rows: each batch
selects at most ``batch_size`` ids, then locks and deletes exactly those rows in its own short
transaction. Active jobs (pending, running) are never deleted, whatever the caller asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskhub.errors import InvalidInput

from ..models import ACTIVE_STATUSES, DEAD_JOBS, TERMINAL_STATUSES, Job, JobStatus, Workflow, WorkflowStatus
from .deduplicated import deduplicated_fold
from .metrics import metrics_advance

MAX_BATCH_SIZE = 10_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_DURATION_HELP = "a whole number and a unit (s, m, h, d, w), e.g. 30d, 12h, 90m or 1d12h"


def parse_duration(text: str, *, name: str = "duration") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a sum such as ``1d12h``, as a positive timedelta.

    The one parser of durations (the command's ``--older-than`` and the ``JOB_RETENTION_*``
    settings); anything else is an InvalidInput naming ``name``.
    """
    value = text.strip().lower() if isinstance(text, str) else ""
    if not _DURATION.fullmatch(value):
        message = f"{text!r} is not a duration: use {_DURATION_HELP}."
        raise InvalidInput(f"{name}: {message}", code="invalid_duration", fields={name: [message]})
    duration = timedelta(seconds=sum(int(number) * _UNITS[unit] for number, unit in _PART.findall(value)))
    if not duration:
        message = f"{text!r} is zero: give a positive duration."
        raise InvalidInput(f"{name}: {message}", code="invalid_duration", fields={name: [message]})
    return duration


DEAD = "dead"


def job_retention_policy() -> dict[str, timedelta | None]:
    """How long finished jobs of each status are kept (``JOB_RETENTION_<STATUS>``), and dead jobs
    (``JOB_RETENTION_DEAD``: failed ones with every automatic retry used); None: forever.

    An empty value or ``0`` keeps them forever, except ``JOB_RETENTION_DEAD``: empty, dead jobs
    keep the failed ones' age, ``0`` keeps them forever. Anything unparsable is a configuration
    error that names the setting.
    """
    policy: dict[str, timedelta | None] = {}
    for status in (*TERMINAL_STATUSES, DEAD):
        setting = f"JOB_RETENTION_{status.upper()}"
        raw = str(getattr(settings, setting, "") or "").strip()
        if status == DEAD and raw == "":
            policy[DEAD] = policy[JobStatus.FAILED]
            continue
        if raw in ("", "0"):
            policy[str(status)] = None
            continue
        try:
            policy[str(status)] = parse_duration(raw, name=setting)
        except InvalidInput as exc:
            raise ImproperlyConfigured(exc.message) from exc
    return policy


def _check_statuses(statuses: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(str(status) for status in statuses))
    allowed = ", ".join(TERMINAL_STATUSES)
    if not chosen:
        raise InvalidInput(f"status: give at least one of {allowed}.", fields={"status": [f"Choose from {allowed}."]})
    for status in chosen:
        if status in ACTIVE_STATUSES:
            message = f"{status} jobs are active and are never deleted; only finished jobs ({allowed}) are."
            raise InvalidInput(f"status: {message}", code="job_active", fields={"status": [message]})
        if status not in TERMINAL_STATUSES:
            message = f"unknown status {status!r}; choose from {allowed}."
            raise InvalidInput(f"status: {message}", fields={"status": [message]})
    return chosen


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        message = f"must be a whole number from 1 to {MAX_BATCH_SIZE:,}, got {batch_size!r}."
        raise InvalidInput(f"batch_size: {message}", fields={"batch_size": [message]})
    return batch_size


def _expired_jobs(status: str, cutoff: datetime) -> QuerySet[Job]:
    """Finished jobs of ``status`` whose age (``finished_at``, else ``created_at``) passed ``cutoff``.

    A job finishes after it is created, so ``created_at < cutoff`` holds for every such job: it
    lets PostgreSQL walk the (status, created_at) index instead of the table. (Clock skew between
    the web and worker machines can only delay a deletion by that skew, never hasten it.)
    """
    return (
        Job.objects.filter(status=status, created_at__lt=cutoff, workflow__isnull=True)  # steps: job_purge_workflows
        .alias(age=Coalesce("finished_at", "created_at"))
        .filter(age__lt=cutoff)
    )


def _delete_in_batches(expired: QuerySet[Job], batch_size: int) -> int:
    """Delete ``expired`` a batch at a time, oldest first; return the number of jobs deleted.

    Each batch locks its rows (``FOR UPDATE SKIP LOCKED``, re-checking status and age), so a job
    that an operator retries meanwhile is either deleted before the retry or left alone. A keyset
    on (created_at, id) moves past rows that were skipped, so each row is read once.
    """
    deleted = 0
    after: tuple[datetime, object] | None = None
    while True:
        page = expired
        if after is not None:
            page = page.filter(created_at__gte=after[0]).filter(
                Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1])
            )
        with transaction.atomic():
            rows = list(
                page.order_by("created_at", "id")
                .select_for_update(skip_locked=True)
                .values_list("created_at", "id")[:batch_size]
            )
            if not rows:
                return deleted
            # The timeline (JobEvent, on_delete=CASCADE) goes with its jobs; only() keeps the
            # collector from loading each job's JSON columns just to delete the row.
            batch = Job.objects.filter(id__in=[job_id for _, job_id in rows])
            deduplicated_fold(batch)  # their duplicates stay counted (/metrics)
            _, per_model = batch.only("id").delete()
        deleted += per_model.get(Job._meta.label, 0)
        after = rows[-1]


def job_purge_finished(
    *,
    older_than: timedelta | None = None,
    statuses: Iterable[str] = TERMINAL_STATUSES,
    batch_size: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete finished jobs (and their timelines) older than ``older_than``; the number per status.

    Age is ``finished_at``, or ``created_at`` when a job never got one. Without ``older_than``
    each status keeps its own age from the settings (``job_retention_policy``); a status kept
    forever is skipped. Dead jobs (``DEAD_JOBS``) go with ``failed``; when ``JOB_RETENTION_DEAD``
    gives them an age of their own they are counted apart ("dead"). Everything is checked before
    anything is deleted. ``dry_run`` counts.
    """
    chosen = _check_statuses(statuses)
    batch_size = _check_batch_size(settings.JOB_RETENTION_BATCH_SIZE if batch_size is None else batch_size)
    if older_than is not None and older_than <= timedelta(0):
        message = f"must be positive, got {older_than}."
        raise InvalidInput(f"older_than: {message}", fields={"older_than": [message]})
    ages = {status: older_than for status in chosen} if older_than is not None else job_retention_policy()
    # Dead jobs are failed ones; with an age of their own (JOB_RETENTION_DEAD) they go apart ("dead").
    apart = JobStatus.FAILED in chosen and older_than is None and ages[DEAD] != ages[JobStatus.FAILED]
    if apart:
        chosen.append(DEAD)
    now = now or timezone.now()
    if not dry_run:
        metrics_advance(until_done=True)  # count what is about to go: metrics' totals never go back
    counts: dict[str, int] = {}
    for status in chosen:
        if ages[status] is None:
            continue
        if status == DEAD:
            expired = _expired_jobs(JobStatus.FAILED, now - ages[status]).filter(DEAD_JOBS)
        else:
            expired = _expired_jobs(status, now - ages[status])
            if status == JobStatus.FAILED and apart:
                expired = expired.exclude(DEAD_JOBS)
        counts[status] = expired.count() if dry_run else _delete_in_batches(expired, batch_size)
    return counts


# A finished workflow is kept as long as a job of the matching status.
_WORKFLOW_RETENTION = {
    WorkflowStatus.SUCCEEDED: JobStatus.SUCCEEDED,
    WorkflowStatus.FAILED: JobStatus.FAILED,
    WorkflowStatus.CANCELLED: JobStatus.REVOKED,
}


def job_purge_workflows(
    *, older_than: timedelta | None = None, dry_run: bool = False, now: datetime | None = None
) -> int:
    """Delete finished workflows older than ``older_than`` (else the retention of the matching job
    status: succeeded, failed, revoked for cancelled), each with all its steps, their timelines and
    edges in one transaction: never half a workflow. One with a step still running, or pending and
    sendable, is left alone (steps waiting for a failed parent go with it). How many workflows."""
    if older_than is not None and older_than <= timedelta(0):
        message = f"must be positive, got {older_than}."
        raise InvalidInput(f"older_than: {message}", fields={"older_than": [message]})
    policy = job_retention_policy() if older_than is None else {}
    now = now or timezone.now()
    deleted = 0
    for status, job_status in _WORKFLOW_RETENTION.items():
        age = older_than or policy[job_status]
        if age is None:
            continue
        live = Job.objects.filter(Q(status=JobStatus.RUNNING) | Q(status=JobStatus.PENDING, parents_remaining=0))
        expired = Workflow.objects.filter(status=status, finished_at__lt=now - age).exclude(
            id__in=live.filter(workflow__isnull=False).values("workflow_id")
        )
        if dry_run:
            deleted += expired.count()
            continue
        if not deleted:
            metrics_advance(until_done=True)  # count what is about to go: metrics' totals never go back
        for workflow_id in list(expired.values_list("id", flat=True)):
            with transaction.atomic():
                # The steps (and with them their timelines and edges), then the workflow's row.
                deduplicated_fold(Job.objects.filter(workflow_id=workflow_id))
                Job.objects.filter(workflow_id=workflow_id).only("id").delete()
                deleted += Workflow.objects.filter(id=workflow_id).delete()[1].get(Workflow._meta.label, 0)
    return deleted


def job_purge_task_results(
    *,
    older_than: timedelta | None = None,
    batch_size: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> int:
    """Delete django-celery-results rows done more than ``CELERY_RESULT_EXPIRES`` ago, in batches.

    The rows Celery's own ``celery.backend_cleanup`` would delete, without its one transaction
    over all of them. Returns how many were (or, with ``dry_run``, would be) deleted.
    """
    batch_size = _check_batch_size(settings.JOB_RETENTION_BATCH_SIZE if batch_size is None else batch_size)
    expires = settings.CELERY_RESULT_EXPIRES if older_than is None else older_than
    if not expires:
        return 0
    if not isinstance(expires, timedelta):
        expires = timedelta(seconds=expires)
    expired = TaskResult.objects.filter(date_done__lt=(now or timezone.now()) - expires)
    if dry_run:
        return expired.count()
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(expired.order_by("date_done", "id").values_list("id", flat=True)[:batch_size])
            if not ids:
                return deleted
            count, _ = TaskResult.objects.filter(id__in=ids).delete()
        deleted += count
