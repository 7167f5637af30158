"""Read queries for jobs. Visibility lives here: owners see their own jobs; staff with the
permission the admin asks for to show jobs (``jobs.view_job``, or ``jobs.change_job``, which
Django's admin counts as viewing too) see all."""

import functools
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, CharField, Count, F, Func, JSONField, Max, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import Coalesce, Greatest, Left, Now

from accounts.models import User
from taskhub.errors import NotFound

from .models import (
    DEAD_JOBS,
    Job,
    JobEvent,
    JobEventKind,
    JobStatus,
    QueueControl,
    WorkflowDependency,
    either_side_of_running,
)
from .timeline import job_lines

OTHERS_JOBS_VIEW_PERMISSIONS = ("jobs.view_job", "jobs.change_job")


def due_pending() -> Q:
    """A pending job that may start now: no run_at, or a run_at past (the database's clock); not a
    workflow step still waiting for its parents."""
    return Q(status=JobStatus.PENDING, parents_remaining=0) & (Q(run_at__isnull=True) | Q(run_at__lte=Now()))


def due_since() -> Greatest:
    """Since when a due pending job has been waiting: its creation, or its run_at when later (a retry's
    backoff, a rate limit's deferral). The oldest pending age of /metrics, the dashboard and the queue pages."""
    return Greatest("created_at", Coalesce("run_at", "created_at"))


def steps_waiting() -> QuerySet[Job]:
    """Workflow steps waiting for their parents: pending, never sent, not runnable until released (not
    in the pending figures nor the active-job quota)."""
    return Job.objects.filter(status=JobStatus.PENDING, parents_remaining__gt=0)


def concurrency_waiting() -> QuerySet[Job]:
    """Pending jobs waiting for their concurrency key (at its limit when they tried to start)."""
    return Job.objects.filter(
        status=JobStatus.PENDING, concurrency_key__isnull=False, concurrency_waiting_since__isnull=False
    )


def sees_every_job(user: User) -> bool:
    """Whether ``user`` sees other users' jobs (API, streams, stats, admin): staff with a view permission."""
    return user.is_staff and any(user.has_perm(permission) for permission in OTHERS_JOBS_VIEW_PERMISSIONS)


def job_list_all(*, names_only: bool = False) -> QuerySet[Job]:
    """Every job, as the operator sees them (commands run without --user), with their owner and
    canceller loaded. ``names_only``: only those users' names, as ``owner_username`` and
    ``cancelled_by_username`` (what the API shows; two User rows per job cost a list page more
    than a millisecond to build)."""
    if names_only:
        return Job.objects.annotate(
            owner_username=F("owner__username"), cancelled_by_username=F("cancelled_by__username")
        )
    return Job.objects.select_related("owner", "cancelled_by")


def job_list(*, user: User, names_only: bool = False) -> QuerySet[Job]:
    """The jobs ``user`` may see (``job_list_all``'s rows): their own, or every job for staff with
    a view permission (``sees_every_job``)."""
    jobs = job_list_all(names_only=names_only)
    return jobs if sees_every_job(user) else jobs.filter(owner=user)


LIST_LEFT_OUT = ("args", "kwargs", "result")


class _InlineJSON(Func):
    """``[value]`` when the JSON column's text (as the database writes it: ``[1, 2]``, ``{"a": 1}``)
    takes at most ``limit`` bytes, else NULL: one expression a field, measured where the value is."""

    output_field = JSONField()

    def __init__(self, field: str, *, limit: int) -> None:
        super().__init__(F(field))
        self.limit = int(limit)

    def as_postgresql(self, compiler, connection, **extra):
        template = (
            f"CASE WHEN %(expressions)s IS NULL OR octet_length(%(expressions)s::text) <= {self.limit} "
            "THEN jsonb_build_array(%(expressions)s) END"
        )
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        template = (
            f"CASE WHEN %(expressions)s IS NULL OR length(CAST(%(expressions)s AS BLOB)) <= {self.limit} "
            "THEN json_array(json(%(expressions)s)) END"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


def job_list_page(jobs: QuerySet[Job], *, inline_max_bytes: int) -> QuerySet[Job]:
    """``jobs`` for a list page: args, kwargs and result larger than ``inline_max_bytes`` stay in
    the database. Each comes as ``<field>_inline``: ``[value]``, or null when left out (the
    serializer reads it), so a large value is never sent to the web process."""
    inline = {f"{field}_inline": _InlineJSON(field, limit=inline_max_bytes) for field in LIST_LEFT_OUT}
    return jobs.defer(*LIST_LEFT_OUT).annotate(**inline)


def job_list_rows(*, user: User, inline_max_bytes: int, columns: tuple[str, ...]) -> QuerySet:
    """The jobs ``user`` may see (``job_list``'s, names only) for a list page (``job_list_page``'s), as
    dicts of ``columns`` only: what a list page shows, without building a Job per row and filling
    its other columns (a third of a 50-job page's CPU). The query is built once (a copy per request:
    four annotations, a defer and a values() cost a page more than running the query)."""
    rows = _every_jobs_rows(inline_max_bytes, columns)
    return rows.all() if sees_every_job(user) else rows.filter(owner=user)


@functools.lru_cache(maxsize=8)
def _every_jobs_rows(inline_max_bytes: int, columns: tuple[str, ...]) -> QuerySet:
    """Never evaluated itself (callers take a copy), so one is shared by every request and thread."""
    return job_list_page(job_list_all(names_only=True), inline_max_bytes=inline_max_bytes).values(*columns)


def job_get(*, user: User, job_id, names_only: bool = False) -> Job:
    """The job if the user may see it; another user's job is reported as not found."""
    job = job_list(user=user, names_only=names_only).filter(id=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.")
    return job


def job_events(*, job: Job) -> list[JobEvent]:
    """``job``'s timeline in order: its real lines and those its row derives (``jobs.timeline``)."""
    return job_lines(job=job)


# How each timeline line that ends an attempt names its outcome.
ATTEMPT_OUTCOMES = {
    JobEventKind.SUCCEEDED: "succeeded",
    JobEventKind.FAILED: "failed",
    JobEventKind.RETRY_SCHEDULED: "failed, retried",
    JobEventKind.REQUEUED: "worker lost, re-queued",
    JobEventKind.REVOKED: "cancelled",
    # An attempt that failed when its retry would have come after the job's deadline (a pending job
    # that expired has no attempt: skipped below).
    JobEventKind.EXPIRED: "failed, expired",
}


def job_attempts(*, events: Iterable[JobEvent]) -> list[dict[str, Any]]:
    """A job's attempts, from its timeline (``events`` in order, as ``job_events`` reads them):
    ``{"number", "worker", "started", "finished", "outcome", "error", "traceback"}`` each, the
    first attempt first. An attempt begins at a ``started`` line (its worker is who started it)
    and ends at the next line of ``ATTEMPT_OUTCOMES``, whose ``data`` holds the attempt's error
    and traceback (``job_fail``) or whose message says what happened (a worker lost). A job that
    failed before any start (its task could not even be called) has one attempt that never
    started. Attempts still running have no ``finished``."""
    attempts: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in events:
        if line.kind == JobEventKind.STARTED:
            current = {"number": len(attempts) + 1, "worker": line.actor_label, "started": line.at, "finished": None}
            current.update(outcome="running", error="", traceback="")
            attempts.append(current)
        elif line.kind in ATTEMPT_OUTCOMES:
            if current is None and line.kind != JobEventKind.FAILED:
                continue  # cancelled or re-queued before a start: no attempt ran
            if current is None:
                current = {"number": len(attempts) + 1, "worker": line.actor_label, "started": None}
                attempts.append(current)
            data = line.data if isinstance(line.data, dict) else {}
            failed = line.kind != JobEventKind.SUCCEEDED
            current.update(
                finished=line.at,
                outcome=ATTEMPT_OUTCOMES[line.kind] if current["started"] else "could not start",
                error=str(data.get("error") or (line.message if failed else "")),
                traceback=str(data.get("traceback") or ""),
            )
            current = None
    return attempts


def job_progress(*, user: User, job_ids: Iterable[uuid.UUID]) -> list[dict[str, Any]]:
    """Status and progress of the given jobs the user may see (the admin's live list polls this).

    One indexed query on primary keys; unknown ids and other users' jobs are simply absent.
    """
    fields = ("id", "status", "progress", "progress_meta", "cancel_requested_at")
    return list(job_list(user=user).filter(id__in=list(job_ids)).values(*fields))


def job_count_estimate() -> int | None:
    """PostgreSQL's planner estimate of the number of job rows, without a COUNT(*).

    None on other databases and for a table that was never analyzed.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [Job._meta.db_table],
        )
        row = cursor.fetchone()
    return row[0] if row and row[0] >= 0 else None


# What the admin's live list shows of a job (job_progress stays as it is for its other callers).
JOB_LIVE_ROW_FIELDS = (
    "id",
    "status",
    "progress",
    "progress_meta",
    "cancel_requested_at",
    "attempts",
    "max_retries",
    "run_at",
    "started_at",
    "finished_at",
    "worker",
    "queue",
    "concurrency_key",
    "concurrency_limit",
    "concurrency_waiting_since",
)

# The timeline lines that say why a pending job waits (or that it was sent round again, which ends
# an earlier wait): the latest of them on a pending job is its hold, if its run_at is still ahead.
HOLD_EVENT_KINDS = (
    JobEventKind.HELD,
    JobEventKind.RATE_LIMITED,
    JobEventKind.FAIR_SHARE,
    JobEventKind.RETRY_SCHEDULED,
    JobEventKind.REQUEUED,
    JobEventKind.RETRIED,
)
# What with_hold() adds to each job (None on a job that is not pending).
HOLD_FIELDS = ("hold_pause_reason", "hold_kind", "hold_data")


def with_hold(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """``jobs`` with what says why a pending one waits: ``hold_pause_reason`` (its queue is paused:
    the operator's reason, "" without one; None when the queue runs), ``hold_kind`` and
    ``hold_data`` (its latest line of ``HOLD_EVENT_KINDS``). Subqueries on the primary key of
    queue control and on the timeline's (job, at) index, evaluated for pending jobs only."""
    paused = QueueControl.objects.filter(name=OuterRef("queue"), paused=True).values("reason")[:1]
    last = JobEvent.objects.filter(job_id=OuterRef("pk"), kind__in=HOLD_EVENT_KINDS).order_by("-at", "-id")
    pending = {"status": JobStatus.PENDING}
    return jobs.annotate(
        hold_pause_reason=Case(When(**pending, then=Subquery(paused)), output_field=CharField()),
        hold_kind=Case(When(**pending, then=Subquery(last.values("kind")[:1])), output_field=CharField()),
        hold_data=Case(When(**pending, then=Subquery(last.values("data")[:1])), output_field=JSONField()),
    )


def job_hold_fields(*, job_id) -> dict[str, Any]:
    """with_hold()'s fields of one job (a job read without them), or all None when it is gone."""
    row = with_hold(Job.objects.filter(id=job_id)).values(*HOLD_FIELDS).first()
    return row or dict.fromkeys(HOLD_FIELDS)


def job_live_rows(*, user: User, job_ids: Iterable[uuid.UUID]) -> list[dict[str, Any]]:
    """Everything the admin's badges, bars, messages, attempt and time columns show of the given
    jobs the user may see, in one indexed query on primary keys; of the error only its start
    (``error_head``), which the message quotes; why a pending one waits (``with_hold``). Unknown
    ids and other users' jobs are absent."""
    jobs = job_list(user=user).filter(id__in=list(job_ids)).annotate(error_head=Left("error", 200))
    return list(with_hold(jobs).values(*JOB_LIVE_ROW_FIELDS, "error_head", *HOLD_FIELDS))


# The timeline lines a django.tasks result is made of: attempts started, cancels, and failures.
STANDARD_HISTORY_KINDS = (
    JobEventKind.STARTED,
    JobEventKind.FAILED,
    JobEventKind.RETRY_SCHEDULED,
    JobEventKind.REQUEUED,
    JobEventKind.CANCEL_REQUESTED,
    JobEventKind.REVOKED,
    JobEventKind.EXPIRED,
)


def job_standard_history(*, job: Job) -> list[JobEvent]:
    """A job's starts, cancels and failures in order (``django.tasks`` results: worker_ids, errors)."""
    return job_lines(job=job, kinds=STANDARD_HISTORY_KINDS)


def notification_recipients_since(*, owner_id: int, task_name: str, since) -> int:
    """How many recipients ``owner_id``'s jobs of ``task_name`` (``to``, by name or first
    positional argument) created since ``since`` listed: what a mail budget counts."""
    total = 0
    rows = Job.objects.filter(
        either_side_of_running(Q(owner_id=owner_id, created_at__gte=since)), celery_task_name=task_name
    ).order_by()  # a sum: in no order
    # Read in chunks through a server-side cursor, inside a transaction: outside one Django declares
    # it WITH HOLD, and behind PgBouncer in transaction mode a later FETCH may reach another server
    # connection, which has no such cursor (docs/DEPLOYMENT.md).
    with transaction.atomic():
        for args, kwargs in rows.values_list("args", "kwargs").iterator():
            to = kwargs.get("to") if isinstance(kwargs, dict) and "to" in kwargs else (args or [None])[0]
            total += len(to) if isinstance(to, list) else 0
    return total


def dead_job_counts() -> list[dict[str, Any]]:
    """Dead jobs (``DEAD_JOBS``: failed, every automatic retry used) counted by task and error type,
    the largest first, with when the last of each group failed: the admin's "Dead jobs" page."""
    return list(
        Job.objects.filter(DEAD_JOBS)
        .values("celery_task_name", "error_type")
        .annotate(count=Count("id"), last_failed_at=Max("finished_at"))
        .order_by("-count", "celery_task_name", "error_type")
    )


def job_parent_results(*, job_id) -> dict[str, Any]:
    """A workflow step's parents' results, by step id (what ``JobTask.parent_results`` reads): one
    query, made when the task asks."""
    rows = WorkflowDependency.objects.filter(child_id=job_id).values_list("parent__workflow_step", "parent__result")
    return dict(rows)
