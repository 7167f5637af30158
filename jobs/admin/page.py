"""The job page's live parts, rendered exactly as the page renders them: its header, the fields
that change while the job lives (outcome, attempt, worker, times), its attempts, its timeline and which of
the Cancel and Retry buttons apply. ``progress/?detail=1`` returns them with the job's live
state, and ``jobs/admin/job_live.js`` puts them in place without a reload."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.helpers import AdminReadonlyField
from django.http import HttpRequest
from django.template.loader import render_to_string

from .. import selectors
from ..models import MANUAL_RETRY_STATUSES, Job

# The page's read-only fields that change after the job was created.
LIVE_FIELDS = (
    "held_reason",
    "result_json",
    "error",
    "traceback_text",
    "attempt_summary",
    "worker",
    "run_at_when",
    "expires_at_when",
    "dispatched_at_when",
    "started_at_when",
    "heartbeat_at_when",
    "finished_at_when",
    "cancel_requested_at_when",
    "cancelled_by",
)
TIMELINE_TEMPLATE = "admin/jobs/job/includes/timeline.html"
ATTEMPTS_TEMPLATE = "admin/jobs/job/includes/attempts.html"
PART_TEMPLATES = {"timeline": TIMELINE_TEMPLATE, "attempts": ATTEMPTS_TEMPLATE}


def offered_operations(model_admin, request: HttpRequest, job: Job) -> dict[str, bool]:
    """Which buttons the page offers: Cancel while the job is active (and no cancel is pending),
    Retry once it failed, was revoked or expired; both only to those who may operate."""
    may_operate = model_admin.has_operate_permission(request)
    return {
        "can_cancel": may_operate and job.is_active and not job.cancel_requested_at,
        "can_retry": may_operate and job.status in MANUAL_RETRY_STATUSES,
    }


def timeline_context(job: Job) -> dict[str, Any]:
    """What the timeline and the attempts sections show: the job's events (read once) and its attempts."""
    events = list(selectors.job_events(job=job))
    return {"timeline": events, "attempts": selectors.job_attempts(events=events)}


def page_parts(model_admin, request: HttpRequest, job: Job) -> dict[str, Any]:
    """``title`` (as in the header), ``fields`` (HTML by field name), ``timeline`` and ``attempts``
    (HTML), ``can_cancel`` and ``can_retry``."""
    form = model_admin.get_form(request, job, change=True)(instance=job)
    context = timeline_context(job)
    fields = {
        name: str(AdminReadonlyField(form, name, is_first=False, model_admin=model_admin).contents())
        for name in LIVE_FIELDS
    }
    return {
        "title": str(job),
        "fields": fields,
        **{part: render_to_string(template, context) for part, template in PART_TEMPLATES.items()},
        **offered_operations(model_admin, request, job),
    }
