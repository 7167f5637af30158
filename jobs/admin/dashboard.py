"""The operator's dashboard (``/admin/jobs/dashboard/``, linked from the admin index): queues, throughput,
failure rate, finished jobs per minute, slowest tasks and workers, live without reloads.

The page is a frame: ``jobs/admin/dashboard.js`` polls ``GET /api/v1/stats/`` with the admin session
every few seconds and draws the figures and the chart (inline SVG). Staff members with the view
permission on jobs see it (``admin_view`` already requires an active staff member).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy

from ..models import Job

POLL_MILLISECONDS = 3000


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(f"{Job._meta.app_label}.view_{Job._meta.model_name}"):
        raise PermissionDenied
    context = {
        **admin.site.each_context(request),
        "title": gettext_lazy("Jobs dashboard"),
        "stats_url": reverse("stats"),
        "job_list_url": reverse("admin:jobs_job_changelist"),
        "poll_interval": POLL_MILLISECONDS,
        "time_zone": settings.TIME_ZONE,  # the times it draws: as the server renders them (when.js)
        "opts": Job._meta,
    }
    return TemplateResponse(request, "admin/jobs/dashboard.html", context)
