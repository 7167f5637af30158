"""A job's live state: one place decides what its status badge, progress bar, attempt count and
run time show, in the HTML of the list and the page and in the JSON of the staff-only
``progress/`` view, which ``jobs/admin/job_live.js`` polls to refresh them in place. With
``detail=1`` the view also returns the job page's parts (``page``): header, fields, timeline,
buttons.

The message beside a bar is true now, not merely the last one the task wrote: a finished job
says how it ended (a task's "0/2 records" written before its last throttled report is not
shown at 100 %), a pending job says why it waits (``job_hold``: its queue is paused, a rate
limit deferred it, its owner runs their share, a retry's backoff, with until when). Attempts
are counted from 1 (``attempts`` + 1), as everywhere people read them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from taskhub.errors import error_body

from .. import selectors
from ..models import ACTIVE_STATUSES, Job, JobEventKind, JobStatus
from .filters import parse_job_id
from .rendering import clock_text, duration_text, short_worker_text, when_html, when_text

# How many ids one poll of the progress view may ask about ("Show all" lists up to 200).
PROGRESS_MAX_IDS = 200
# With detail=1 (a job page's parts, timeline included), fewer.
PROGRESS_MAX_DETAIL_IDS = 10


def _attempt_phrase(attempts: int, max_retries: int) -> str:
    """ "attempt 2 of 4"; a manual retry past the automatic ones is just "attempt 5"."""
    attempt, allowed = attempts + 1, max_retries + 1
    return f"attempt {attempt} of {allowed}" if attempt <= allowed else f"attempt {attempt}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def job_hold(row: dict[str, Any], *, now: datetime) -> dict[str, Any] | None:
    """Why a pending job is not running now, or None (not pending, or only waiting for a worker):
    ``{"reason", "until", "text"}``. The one place the reason is derived, for the list, the job
    page and the progress view, from the row's fields and ``selectors.with_hold``'s.

    Reasons: ``queue_paused`` (no until: it waits for a resume), ``concurrency`` (no until: it waits
    for a job of its concurrency key to finish), and for a job due later
    (``until`` = its ``run_at``) ``rate_limit`` or ``fair_share`` after the timeline line that
    deferred it, else ``retry_backoff`` once an attempt ran, else ``scheduled`` (created to run later).
    """
    if row["status"] != JobStatus.PENDING:
        return None
    if row.get("hold_pause_reason") is not None:
        reason = row["hold_pause_reason"]
        text = f"held: queue {row['queue']} is paused" + (f" ({reason})" if reason else "")
        return {"reason": "queue_paused", "until": None, "text": text}
    if row.get("concurrency_waiting_since") and row.get("concurrency_key") is not None:
        text = f"waiting: concurrency key {row['concurrency_key']} at its limit {row['concurrency_limit']}"
        return {"reason": "concurrency", "until": None, "text": text}
    run_at = row["run_at"]
    if not run_at or run_at <= now:
        return None
    until = clock_text(run_at, now=now)
    kind, data = row.get("hold_kind"), row.get("hold_data") or {}
    if kind == JobEventKind.RATE_LIMITED and {"scope", "name", "limit", "period"} <= data.keys():
        limit = f"{data['scope']} {data['name']}: {data['limit']} per {data['period']}s"
        reason, text = "rate_limit", f"rate limit {limit}, until {until}"
    elif kind == JobEventKind.FAIR_SHARE and "cap" in data:
        at_most = _plural(int(data["cap"]), "job")
        reason, text = "fair_share", f"fair share: its owner runs {at_most} at once at most, until {until}"
    elif row["attempts"]:  # an earlier attempt ran: the next one waits for its backoff
        attempt = _attempt_phrase(row["attempts"], row["max_retries"])
        reason, text = "retry_backoff", f"retry backoff: {attempt}, until {until}"
    else:
        reason, text = "scheduled", f"scheduled for {until}"
    return {"reason": reason, "until": run_at, "text": text}


def progress_message(row: dict[str, Any], *, now: datetime) -> str:
    """The message beside the progress bar, true at this moment."""
    status = row["status"]
    if status == JobStatus.SUCCEEDED:
        if row["started_at"] and row["finished_at"]:
            return f"done in {duration_text(row['finished_at'] - row['started_at'])}"
        return "done"
    if status == JobStatus.FAILED:
        first_line = (row["error_head"] or "").strip().split("\n", 1)[0]
        return f"failed: {first_line}" if first_line else "failed"
    if status == JobStatus.REVOKED:
        return "cancelled" if row["started_at"] else "cancelled before it started"
    if status == JobStatus.PENDING:
        if hold := job_hold(row, now=now):
            return hold["text"]
        attempt = _attempt_phrase(row["attempts"], row["max_retries"])
        return f"queued: {attempt}" if row["attempts"] else "queued"
    meta = row["progress_meta"]
    message = meta.get("message") if isinstance(meta, dict) else None
    return "" if message is None else str(message)


def attempt_texts(attempts: int, max_retries: int) -> tuple[str, str]:
    """The Attempts column: ``2/4``, and its title "attempt 2 of 4 (3 automatic retries allowed)"."""
    attempt, allowed = attempts + 1, max_retries + 1
    short = f"{attempt}/{allowed}" if attempt <= allowed else str(attempt)
    if max_retries == 0:
        retries = "no automatic retries"
    elif max_retries == 1:
        retries = "1 automatic retry allowed"
    else:
        retries = f"{max_retries} automatic retries allowed"
    return short, f"{_attempt_phrase(attempts, max_retries)} ({retries})"


def run_text(row: dict[str, Any], *, now: datetime) -> str:
    """How long the current attempt ran or runs, and where: "running 12s · worker-7"."""
    status, started = row["status"], row["started_at"]
    if status == JobStatus.PENDING:
        return "waiting"
    if started is None:
        return "never ran"
    if status == JobStatus.RUNNING:
        text = f"running {duration_text(now - started)}"
    else:
        text = f"ran {duration_text((row['finished_at'] or now) - started)}"
    return f"{text} · {short_worker_text(row['worker'])}" if row["worker"] else text


def live_state(row: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """What the badge, bar, attempt and run time of one job show; also the JSON the page polls."""
    now = now or timezone.now()
    status = row["status"]
    if status == JobStatus.RUNNING and row["cancel_requested_at"]:
        badge, label = "cancelling", _("Cancelling")
    else:
        badge, label = status, str(JobStatus(status).label)
    attempt, attempt_title = attempt_texts(row["attempts"], row["max_retries"])
    hold = job_hold(row, now=now)
    held = None if hold is None else {"reason": hold["reason"], "until": hold["until"] and hold["until"].isoformat()}
    return {
        "id": str(row["id"]),
        "status": status,
        "badge": badge,
        "label": label,
        "progress": row["progress"],
        "message": progress_message(row, now=now),
        "active": status in ACTIVE_STATUSES,
        "attempt": attempt,
        "attempt_title": attempt_title,
        "run": run_text(row, now=now),
        "held": held,
        "held_text": "" if hold is None else hold["text"],
    }


def job_row(job: Job) -> dict[str, Any]:
    """A Job as the row selectors.job_live_rows reads. A pending job read without
    ``selectors.with_hold`` asks for its hold fields (one query)."""
    row = {name: getattr(job, name) for name in selectors.JOB_LIVE_ROW_FIELDS}
    if all(hasattr(job, name) for name in selectors.HOLD_FIELDS):
        hold = {name: getattr(job, name) for name in selectors.HOLD_FIELDS}
    elif job.status == JobStatus.PENDING:
        hold = selectors.job_hold_fields(job_id=job.pk)
    else:
        hold = dict.fromkeys(selectors.HOLD_FIELDS)
    return {**row, **hold, "error_head": job.error[:200]}


def job_state(job: Job) -> dict[str, Any]:
    return live_state(job_row(job))


def status_badge_html(state: dict[str, Any]) -> str:
    return format_html(
        '<span class="job-badge job-badge--{}" data-job-id="{}" data-job-part="badge" data-job-active="{}">{}</span>',
        state["badge"],
        state["id"],
        "true" if state["active"] else "false",
        state["label"],
    )


def progress_bar_html(state: dict[str, Any]) -> str:
    return format_html(
        '<div class="job-progress job-progress--{badge}{held}" data-job-id="{id}"'
        ' data-job-part="progress" data-job-active="{active}" role="progressbar"'
        ' aria-valuemin="0" aria-valuemax="100" aria-valuenow="{progress}" title="{message}">'
        '<div class="job-progress__track">'
        '<div class="job-progress__fill" style="width: {progress}%"></div></div>'
        '<span class="job-progress__text"><span class="job-progress__percent">{progress}%</span>'
        ' <span class="job-progress__message">{message}</span></span></div>',
        badge=state["badge"],
        held=" job-progress--held" if state["held"] else "",
        id=state["id"],
        active="true" if state["active"] else "false",
        progress=state["progress"],
        message=state["message"],
    )


def attempt_html(state: dict[str, Any]) -> str:
    return format_html(
        '<span class="job-attempt" data-job-id="{}" data-job-part="attempt" title="{}">{}</span>',
        state["id"],
        state["attempt_title"],
        state["attempt"],
    )


def when_column_html(job: Job, state: dict[str, Any]) -> str:
    """The list's one time column: when the job was created (when_html), and how long it ran where
    (its title: every time of the job, and its worker)."""
    title = " · ".join(
        f"{label} {when_text(value)}"
        for label, value in (("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at))
        if value
    )
    if job.worker:
        title = f"{title} · worker {job.worker}"
    return format_html(
        '<span class="job-when-cell">{}<span class="job-when__run" data-job-id="{}" data-job-part="run" title="{}">'
        "{}</span></span>",
        when_html(job.created_at),
        state["id"],
        title,
        state["run"],
    )


def progress_response(
    request: HttpRequest, *, allowed: bool, page_parts: Callable[[Job], dict[str, Any]]
) -> JsonResponse:
    """``?ids=<uuid>,<uuid>`` -> ``{"jobs": [live state, ...]}`` of the jobs the user may see;
    with ``&detail=1`` each state also has ``page_parts(job)`` (at most PROGRESS_MAX_DETAIL_IDS).

    ``allowed``: whether the user may poll at all (staff with the job view permission); if not,
    a 403 in JSON, as a poller wants, rather than a redirect to the login page.
    """
    if not allowed:
        return JsonResponse(error_body("permission_denied", _("Staff members only.")), status=403)
    detail = request.GET.get("detail") == "1"
    limit = PROGRESS_MAX_DETAIL_IDS if detail else PROGRESS_MAX_IDS
    raw_ids = [part.strip() for part in request.GET.get("ids", "").split(",") if part.strip()]
    if len(raw_ids) > limit:
        message = _("ids: at most %(max)d ids at a time.") % {"max": limit}
        return JsonResponse(error_body("invalid", message), status=400)
    job_ids = [parse_job_id(raw) for raw in raw_ids]
    if None in job_ids:
        message = _("ids: a comma-separated list of job ids (UUIDs) is expected.")
        return JsonResponse(error_body("invalid", message), status=400)
    if detail:
        jobs = selectors.with_hold(selectors.job_list(user=request.user)).filter(id__in=job_ids)
        return JsonResponse({"jobs": [{**job_state(job), **page_parts(job)} for job in jobs]})
    now = timezone.now()
    rows = selectors.job_live_rows(user=request.user, job_ids=job_ids)
    return JsonResponse({"jobs": [live_state(row, now=now) for row in rows]})
