"""The job admin: an operator's view of every job, driven through jobs.services.

Everything on a job belongs to the system, so the job page is view-only (no form can write
a row a worker is updating). Operators submit jobs on the add page (``submit``) and act through
the actions, the "all matching" operations (``matching``) and the Cancel/Retry buttons
(``operations``), which call the same services as the API; the job permissions gate them:
"add" to submit, "change" to cancel or retry, "delete" to delete (the "operator" role has all
three, the "viewer" role none). The list's badges, bars, attempts and times, and the whole job
page, follow the jobs without a reload: ``jobs/admin/job_live.js`` follows the live-progress
streams (``jobs/stream.js``) and asks the staff-only ``progress/`` view (``live``, ``page``) about
each job that changed; it polls that view only where the streams do not get through. Jobs
created after the list was rendered are announced ("N new jobs — show") and its count kept
current by ``jobs/admin/job_arrivals.js``, which polls the ``arrivals/`` view (``arrivals``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_permission_codename
from django.http import HttpRequest, JsonResponse, QueryDict
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .. import selectors
from ..models import Job
from .arrivals import JobArrivals
from .dead import DeadFilter, DeadJobsPage, ErrorTypeFilter
from .edit_retry import EditRetry
from .filters import (
    ArgumentFilter,
    CheckedLookups,
    ConcurrencyKeyFilter,
    JobIdSearch,
    QueueFilter,
    TaskFilter,
    WorkerFilter,
)
from .job_state import (
    attempt_html,
    job_state,
    progress_bar_html,
    progress_response,
    status_badge_html,
    when_column_html,
)
from .matching import MatchingOperations
from .operations import JobOperations
from .page import offered_operations, page_parts, timeline_context
from .pagination import JobPaginator
from .rendering import json_column, when_column
from .submit import JobSubmission

# The list's filters on what never changes on a job, by the list stream's names for them (jobs/filters.py).
# Not the status: a job leaving the status the list shows must still reach the page.
LIST_STREAM_FILTERS = {"priority__exact": "priority", "celery_task_name": "task"}


def list_stream_url(request: HttpRequest) -> str:
    """The list stream (``/api/v1/jobs/stream/``) narrowed by the list page's filters that it shares."""
    query = QueryDict(mutable=True)
    for admin_name, stream_name in LIST_STREAM_FILTERS.items():
        if values := request.GET.getlist(admin_name):
            query.setlist(stream_name, values)
    url = reverse("job-list-stream")
    return f"{url}?{query.urlencode()}" if query else url


@admin.register(Job)
class JobAdmin(
    CheckedLookups,
    JobIdSearch,
    JobSubmission,
    MatchingOperations,
    JobOperations,
    JobArrivals,
    EditRetry,
    DeadJobsPage,
    admin.ModelAdmin,
):
    # Compact enough for a 1366 px screen: one time column, the queue in the priority's title.
    list_display = ("name", "status_badge", "progress_bar", "priority_queue", "owner", "attempt", "when")
    list_display_links = ("name",)
    list_filter = (
        "status",
        DeadFilter,
        "priority",
        QueueFilter,
        TaskFilter,
        ErrorTypeFilter,
        WorkerFilter,
        ConcurrencyKeyFilter,
        ArgumentFilter,
        "unique_policy",
        "created_at",
    )
    search_fields = ("name", "celery_task_name", "owner__username", "=unique_key")
    search_help_text = gettext_lazy(
        "Name, task or owner's username (contains), a complete unique key, or a complete job id."
    )
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
                    "held_reason",
                    "owner",
                    "workflow_link",
                    "celery_task_name",
                    "task_type",
                    "priority",
                    "queue",
                    "concurrency",
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
                    "attempt_summary",
                    "worker",
                    # Times through when_html (the *_when columns below): Django would render the model fields itself.
                    "created_at_when",
                    "run_at_when",
                    "expires_at_when",
                    "dispatched_at_when",
                    "started_at_when",
                    "heartbeat_at_when",
                    "finished_at_when",
                    ("cancel_requested_at_when", "cancelled_by"),
                )
            },
        ),
        (
            gettext_lazy("Unique key"),
            {"classes": ("collapse",), "fields": ("unique_key", "unique_policy", "unique_held", "duplicates")},
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

    @admin.display(description=gettext_lazy("workflow"))
    def workflow_link(self, job: Job) -> str:
        """The workflow this job is a step of (its page draws the DAG), or a dash."""
        if job.workflow_id is None:
            return "-"
        url = reverse("admin:jobs_workflow_change", args=[job.workflow_id])
        return format_html('<a href="{}">step {} of workflow {}</a>', url, job.workflow_step, job.workflow_id)

    args_json = json_column("args", gettext_lazy("args"))
    kwargs_json = json_column("kwargs", gettext_lazy("kwargs"))
    result_json = json_column("result", gettext_lazy("result"))
    created_at_when = when_column("created_at", gettext_lazy("created at"))
    run_at_when = when_column("run_at", gettext_lazy("run at (not before)"))
    expires_at_when = when_column("expires_at", gettext_lazy("expires at (never started after)"))
    dispatched_at_when = when_column("dispatched_at", gettext_lazy("dispatched at"))
    started_at_when = when_column("started_at", gettext_lazy("started at"))
    heartbeat_at_when = when_column("heartbeat_at", gettext_lazy("heartbeat at"))
    finished_at_when = when_column("finished_at", gettext_lazy("finished at"))
    cancel_requested_at_when = when_column("cancel_requested_at", gettext_lazy("cancel requested at"))

    def get_queryset(self, request):
        # The list's pages, counts and date hierarchy read the running jobs apart (``running_apart``:
        # the list orders' indexes leave them out, migration 0026).
        return selectors.with_hold(selectors.job_list(user=request.user)).running_apart()

    @property
    def media(self):
        progress_url = reverse(f"{self.admin_site.name}:jobs_job_progress")
        live = forms.Media(
            css={"all": ("jobs/admin/jobs.css",)},
            js=(
                forms.Script("jobs/stream.js", defer=True),
                forms.Script("jobs/admin/job_arrivals.js", **{"data-interval": "3000", "defer": True}),
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

    @admin.display(description=gettext_lazy("waiting because"))
    def held_reason(self, job: Job) -> str:
        """Why a pending job does not run now, in full (beside the bar it may be cut to two lines)."""
        held = job_state(job)["held_text"]
        return format_html('<span class="job-held">{}</span>', held) if held else "-"

    @admin.display(description=gettext_lazy("concurrency key"))
    def concurrency(self, job: Job) -> str:
        """Its key and limit, linked to the key's jobs; "-" without one."""
        if job.concurrency_key is None:
            return "-"
        url = (
            reverse("admin:jobs_job_changelist")
            + "?"
            + QueryDict.fromkeys(["concurrency_key"], job.concurrency_key).urlencode()
        )
        return format_html('<a href="{}">{}</a> (at most {} at once)', url, job.concurrency_key, job.concurrency_limit)

    @admin.display(description=gettext_lazy("priority"), ordering="priority")
    def priority_queue(self, job: Job) -> str:
        return format_html('<span title="queue {}">{}</span>', job.queue, job.priority)

    @admin.display(description=gettext_lazy("attempt"), ordering="attempts")
    def attempt(self, job: Job) -> str:
        return attempt_html(job_state(job))

    @admin.display(description=gettext_lazy("attempt"))
    def attempt_summary(self, job: Job) -> str:
        return job_state(job)["attempt_title"]

    @admin.display(description=gettext_lazy("when"), ordering="created_at")
    def when(self, job: Job) -> str:
        return when_column_html(job, job_state(job))

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_text(self, job: Job) -> str:
        if not job.traceback:
            return "-"
        return format_html('<pre class="job-pre job-pre--traceback">{}</pre>', job.traceback)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                **timeline_context(obj),
                may_operate=self.has_operate_permission(request),
                **offered_operations(self, request, obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(self, request, extra_context=None):
        # The list is a wide table: without the admin's navigation sidebar it fits a 1366 px
        # screen next to its filters (the breadcrumbs lead back to the other models).
        arrivals_url = reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_arrivals")
        extra_context = {
            "is_nav_sidebar_enabled": False,
            **self.arrivals_context(request, arrivals_url),
            **(extra_context or {}),
        }
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context["matching_links"] = self.matching_links(request, context["cl"])
            context["job_list_stream_url"] = list_stream_url(request)
        return response

    # --- permissions: the system owns every field ---

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

    # --- extra admin views: live progress (JSON), the job page's buttons, all matching ---

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        site = self.admin_site
        return [
            path("progress/", never_cache(self.progress_view), name=f"{prefix}_progress"),
            path("arrivals/", never_cache(self.arrivals_view), name=f"{prefix}_arrivals"),
            path("dead/", site.admin_view(self.dead_view), name=f"{prefix}_dead"),
            path(
                "matching/<str:operation>/",
                site.admin_view(self.matching_view),
                name=f"{prefix}_matching",
            ),
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
            path("<path:object_id>/edit-retry/", site.admin_view(self.edit_retry_view), name=f"{prefix}_edit_retry"),
            *super().get_urls(),
        ]

    def progress_view(self, request: HttpRequest) -> JsonResponse:
        """Staff only. Not wrapped in admin_view: a poller wants a 403 in JSON, not a redirect to
        the login page."""
        allowed = self.admin_site.has_permission(request) and self.has_view_permission(request)
        return progress_response(request, allowed=allowed, page_parts=lambda job: page_parts(self, request, job))
