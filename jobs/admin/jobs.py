"""The job admin: an operator's view of every job, driven through jobs.services.

Everything on a job belongs to the system, so the job page is view-only (no form can write
a row a worker is updating). Operators act through the actions and the Cancel/Retry buttons
(``operations``), which call the same services as the API; the job permissions gate them:
"change" to cancel or retry, "delete" to delete. Status badges and progress bars of active
jobs are refreshed in place by ``jobs/admin/job_live.js``, which polls the staff-only
``progress/`` view (``live``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_permission_codename
from django.http import HttpRequest, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .. import selectors
from ..models import MANUAL_RETRY_STATUSES, Job
from .filters import JobIdSearch, QueueFilter, TaskFilter
from .live import job_state, progress_bar_html, progress_response, status_badge_html
from .operations import JobOperations
from .pagination import JobPaginator
from .rendering import json_column, when_column


@admin.register(Job)
class JobAdmin(JobIdSearch, JobOperations, admin.ModelAdmin):
    list_display = (
        "name",
        "status_badge",
        "progress_bar",
        "priority",
        "queue",
        "owner",
        "attempts",
        "created",
        "started",
        "finished",
    )
    list_display_links = ("name",)
    list_filter = ("status", "priority", QueueFilter, TaskFilter, "created_at")
    search_fields = ("name", "celery_task_name", "owner__username")
    search_help_text = gettext_lazy("Name, task or owner's username (contains), or a complete job id.")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    list_per_page = 50
    show_full_result_count = False
    paginator = JobPaginator
    actions = ("cancel", "retry", "delete_selected")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "name",
                    "status_badge",
                    "progress_bar",
                    "owner",
                    "celery_task_name",
                    "task_type",
                    "priority",
                    "queue",
                )
            },
        ),
        (gettext_lazy("Input"), {"fields": ("args_json", "kwargs_json")}),
        (
            gettext_lazy("Outcome"),
            {"fields": ("result_json", "error", "traceback_text")},
        ),
        (
            gettext_lazy("Attempts and times"),
            {
                "fields": (
                    ("attempts", "max_retries"),
                    "worker",
                    "created_at",
                    "run_at",
                    "dispatched_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    ("cancel_requested_at", "cancelled_by"),
                )
            },
        ),
        (
            gettext_lazy("Request"),
            {
                "classes": ("collapse",),
                "fields": ("idempotency_key", "request_fingerprint"),
            },
        ),
    )
    # Nothing on a job is editable here: the system owns every field.
    readonly_fields = flatten_fieldsets(fieldsets)

    # --- reading ---

    created = when_column("created_at", gettext_lazy("created"))
    started = when_column("started_at", gettext_lazy("started"))
    finished = when_column("finished_at", gettext_lazy("finished"))
    args_json = json_column("args", gettext_lazy("args"))
    kwargs_json = json_column("kwargs", gettext_lazy("kwargs"))
    result_json = json_column("result", gettext_lazy("result"))

    def get_queryset(self, request):
        return selectors.job_list(user=request.user)

    @property
    def media(self):
        progress_url = reverse(f"{self.admin_site.name}:jobs_job_progress")
        live = forms.Media(
            css={"all": ("jobs/admin/jobs.css",)},
            js=(
                forms.Script(
                    "jobs/admin/job_live.js",
                    **{
                        "data-progress-url": progress_url,
                        "data-interval": "2000",
                        "defer": True,
                    },
                ),
            ),
        )
        return super().media + live

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, job: Job) -> str:
        return status_badge_html(job_state(job))

    @admin.display(description=gettext_lazy("progress"), ordering="progress")
    def progress_bar(self, job: Job) -> str:
        return progress_bar_html(job_state(job))

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_text(self, job: Job) -> str:
        if not job.traceback:
            return "-"
        return format_html('<pre class="job-pre job-pre--traceback">{}</pre>', job.traceback)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            may_operate = self.has_operate_permission(request)
            context.update(
                timeline=selectors.job_events(job=obj),
                can_cancel=may_operate and obj.is_active and not obj.cancel_requested_at,
                can_retry=may_operate and obj.status in MANUAL_RETRY_STATUSES,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- permissions: the system owns every field ---

    def has_add_permission(self, request):
        return False  # jobs are created through the API and manage.py enqueue_job

    def has_change_permission(self, request, obj=None):
        return False  # view-only: a saved form would overwrite what the worker writes

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_active:
            return False  # cancel first; hides the Delete link of an active job
        return super().has_delete_permission(request, obj)

    def has_operate_permission(self, request, obj=None) -> bool:
        """Cancel and retry: holders of the job "change" permission (all superusers)."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    # --- extra admin views: live progress (JSON) and the job page's buttons ---

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        site = self.admin_site
        return [
            path("progress/", never_cache(self.progress_view), name=f"{prefix}_progress"),
            path(
                "<path:object_id>/cancel/",
                site.admin_view(require_POST(self.cancel_view)),
                name=f"{prefix}_cancel",
            ),
            path(
                "<path:object_id>/retry/",
                site.admin_view(require_POST(self.retry_view)),
                name=f"{prefix}_retry",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request: HttpRequest) -> JsonResponse:
        """Staff only. Not wrapped in admin_view: a poller wants a 403 in JSON, not a redirect to
        the login page."""
        allowed = self.admin_site.has_permission(request) and self.has_view_permission(request)
        return progress_response(request, allowed=allowed)
