"""A job's live state: one place decides what its status badge and progress bar show, in the
HTML of the list and page and in the JSON of the staff-only ``progress/`` view, which
``jobs/admin/job_live.js`` polls to refresh the badges and bars of active jobs in place."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.html import format_html
from django.utils.translation import gettext as _

from taskhub.errors import error_body

from .. import selectors
from ..models import ACTIVE_STATUSES, Job, JobStatus
from .filters import parse_job_id

# How many ids one poll of the progress view may ask about ("Show all" lists up to 200).
PROGRESS_MAX_IDS = 200


def live_state(
    *,
    id: uuid.UUID,
    status: str,
    progress: int,
    progress_meta: Any,
    cancel_requested_at: Any,
) -> dict[str, Any]:
    """What the badge and the progress bar of one job show; also the JSON the page polls."""
    if status == JobStatus.RUNNING and cancel_requested_at:
        badge, label = "cancelling", _("Cancelling")
    else:
        badge, label = status, str(JobStatus(status).label)
    message = progress_meta.get("message") if isinstance(progress_meta, dict) else None
    return {
        "id": str(id),
        "status": status,
        "badge": badge,
        "label": label,
        "progress": progress,
        "message": "" if message is None else str(message),
        "active": status in ACTIVE_STATUSES,
    }


def job_state(job: Job) -> dict[str, Any]:
    return live_state(
        id=job.id,
        status=job.status,
        progress=job.progress,
        progress_meta=job.progress_meta,
        cancel_requested_at=job.cancel_requested_at,
    )


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
        '<div class="job-progress job-progress--{badge}" data-job-id="{id}"'
        ' data-job-part="progress" data-job-active="{active}" role="progressbar"'
        ' aria-valuemin="0" aria-valuemax="100" aria-valuenow="{progress}" title="{message}">'
        '<div class="job-progress__track">'
        '<div class="job-progress__fill" style="width: {progress}%"></div></div>'
        '<span class="job-progress__text"><span class="job-progress__percent">{progress}%</span>'
        ' <span class="job-progress__message">{message}</span></span></div>',
        badge=state["badge"],
        id=state["id"],
        active="true" if state["active"] else "false",
        progress=state["progress"],
        message=state["message"],
    )


def progress_response(request: HttpRequest, *, allowed: bool) -> JsonResponse:
    """``?ids=<uuid>,<uuid>`` -> ``{"jobs": [live state, ...]}`` of the jobs the user may see.

    ``allowed``: whether the user may poll at all (staff with the job view permission); if not,
    a 403 in JSON, as a poller wants, rather than a redirect to the login page.
    """
    if not allowed:
        return JsonResponse(error_body("permission_denied", _("Staff members only.")), status=403)
    raw_ids = [part.strip() for part in request.GET.get("ids", "").split(",") if part.strip()]
    if len(raw_ids) > PROGRESS_MAX_IDS:
        message = _("ids: at most %(max)d ids at a time.") % {"max": PROGRESS_MAX_IDS}
        return JsonResponse(error_body("invalid", message), status=400)
    job_ids = [parse_job_id(raw) for raw in raw_ids]
    if None in job_ids:
        message = _("ids: a comma-separated list of job ids (UUIDs) is expected.")
        return JsonResponse(error_body("invalid", message), status=400)
    rows = selectors.job_progress(user=request.user, job_ids=job_ids)
    return JsonResponse({"jobs": [live_state(**row) for row in rows]})
