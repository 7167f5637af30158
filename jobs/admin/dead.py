"""The admin's "Dead jobs" page: failed jobs with every automatic retry used (``DEAD_JOBS``),
counted by task and error type, as Sidekiq's Dead set or Oban Web's discarded jobs.

Each count links to the job list filtered to those jobs (the ``dead`` and ``error_type`` filters
below), where the list's own actions retry or delete them, a page or "all matching" at a time:
nothing here acts on a job itself.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy

from ..models import DEAD_JOBS, JobStatus
from ..selectors import dead_job_counts

MAX_ERROR_TYPE_CHOICES = 50


class DeadFilter(admin.SimpleListFilter):
    title = gettext_lazy("dead (out of retries)")
    parameter_name = "dead"

    def lookups(self, request, model_admin):
        return [("yes", gettext_lazy("Dead")), ("no", gettext_lazy("Not dead"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(DEAD_JOBS)
        if self.value() == "no":
            return queryset.exclude(DEAD_JOBS)
        return queryset


class ErrorTypeFilter(admin.SimpleListFilter):
    """The exception class a failed job ended with: the error types of the failed jobs, and any
    given in the URL (the Dead jobs page's links)."""

    title = gettext_lazy("error type")
    parameter_name = "error_type"

    def lookups(self, request, model_admin):
        failed = model_admin.model.objects.filter(status=JobStatus.FAILED).exclude(error_type="")
        types = set(failed.values_list("error_type", flat=True).distinct().order_by()[:MAX_ERROR_TYPE_CHOICES])
        if self.value():
            types.add(self.value())
        return [(name, name) for name in sorted(types)]

    def queryset(self, request, queryset):
        return queryset.filter(Q(error_type=self.value())) if self.value() else queryset


class DeadJobsPage:
    """ModelAdmin mixin: the Dead jobs page (``dead_view``), for whoever may view jobs."""

    def dead_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job_list_url = reverse(f"{self.admin_site.name}:jobs_job_changelist")
        groups = []
        for group in dead_job_counts():
            query = {"celery_task_name": group["celery_task_name"], "dead": "yes"}
            if group["error_type"]:
                query["error_type"] = group["error_type"]
            groups.append(
                {
                    **group,
                    "task": group["celery_task_name"].rsplit(".", 1)[-1],
                    "url": f"{job_list_url}?{urlencode(sorted(query.items()))}",
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext_lazy("Dead jobs"),
            "groups": groups,
            "total": sum(group["count"] for group in groups),
            "job_list_url": job_list_url,
            "all_dead_url": f"{job_list_url}?dead=yes",
        }
        return TemplateResponse(request, "admin/jobs/job/dead.html", context)
