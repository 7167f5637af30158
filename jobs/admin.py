"""The job admin: an operator's view of every job, driven through jobs.services.

Everything on a job belongs to the system, so the job page is view-only (no form can write
a row a worker is updating). Operators act through the actions and the Cancel/Retry buttons,
which call the same services as the API; the job permissions gate them: "change" to cancel
or retry, "delete" to delete. Status badges and progress bars of active jobs are refreshed
in place by ``jobs/admin/job_live.js``, which polls the staff-only ``progress/`` view.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, ngettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from taskhub.errors import ApplicationError, error_body

from . import selectors, services
from .catalog import catalog
from .models import ACTIVE_STATUSES, RETRYABLE_STATUSES, Job, JobEvent, JobStatus

admin.site.site_header = gettext_lazy("taskhub administration")
admin.site.site_title = gettext_lazy("taskhub admin")
admin.site.index_title = gettext_lazy("Jobs, schedules and users")

# How many ids one poll of the progress view may ask about ("Show all" lists up to 200).
PROGRESS_MAX_IDS = 200
# How many refusal reasons one message lists before "and N more".
MAX_REASONS = 5
# Above this many rows an unfiltered job list shows PostgreSQL's row estimate, not a COUNT(*).
ESTIMATE_COUNT_ABOVE = 100_000


# --- live state: one place decides what a badge and a bar show (HTML and the JSON view) ---------


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


def _job_state(job: Job) -> dict[str, Any]:
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


def _json_block(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html('<pre class="job-pre job-pre--json">{}</pre>', text)


def _when(value: datetime | None) -> str:
    """A compact, sortable local time for list columns (the full value is in the title)."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<time class="job-when" datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        date_format(local, "DATETIME_FORMAT"),
        local.strftime("%Y-%m-%d %H:%M:%S"),
    )


def _search_uuid(search_term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(search_term.strip())
    except ValueError:
        return None


# --- list filters without a DISTINCT over the whole table ---------------------------------------


class QueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue, queue) for queue in settings.JOB_QUEUES]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TaskFilter(admin.SimpleListFilter):
    """The registered tasks (from the catalog) rather than a DISTINCT over every job."""

    title = gettext_lazy("task")
    parameter_name = "celery_task_name"

    def lookups(self, request, model_admin):
        return [(entry.name, entry.name.rsplit(".", 1)[-1]) for entry in catalog.entries()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(celery_task_name=self.value())
        return queryset


class JobPaginator(Paginator):
    """Counting every row of a large jobs table is slow on PostgreSQL: once the table is
    large, the unfiltered list shows the planner's estimate instead."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            estimate = selectors.job_count_estimate()
            if estimate is not None and estimate > ESTIMATE_COUNT_ABOVE:
                return estimate
        return super().count


# --- the job admin -------------------------------------------------------------------------------


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
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

    def get_queryset(self, request):
        return selectors.job_list(user=request.user)

    def get_search_results(self, request, queryset, search_term):
        """A complete job id is looked up by primary key; other terms search the text fields."""
        job_id = _search_uuid(search_term)
        if job_id is not None:
            return queryset.filter(id=job_id), False
        return super().get_search_results(request, queryset, search_term)

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
        return status_badge_html(_job_state(job))

    @admin.display(description=gettext_lazy("progress"), ordering="progress")
    def progress_bar(self, job: Job) -> str:
        return progress_bar_html(_job_state(job))

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, job: Job) -> str:
        return _when(job.created_at)

    @admin.display(description=gettext_lazy("started"), ordering="started_at")
    def started(self, job: Job) -> str:
        return _when(job.started_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def finished(self, job: Job) -> str:
        return _when(job.finished_at)

    @admin.display(description=gettext_lazy("args"))
    def args_json(self, job: Job) -> str:
        return _json_block(job.args)

    @admin.display(description=gettext_lazy("kwargs"))
    def kwargs_json(self, job: Job) -> str:
        return _json_block(job.kwargs)

    @admin.display(description=gettext_lazy("result"))
    def result_json(self, job: Job) -> str:
        return _json_block(job.result)

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
                can_retry=may_operate and obj.status in RETRYABLE_STATUSES,
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

    def get_deleted_objects(self, objs, request):
        """A job's timeline goes with it; the read-only event admin must not block that."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(JobEvent._meta.verbose_name)
        return deleted, model_count, perms_needed, protected

    # --- acting: every change goes through jobs.services ---

    def _run(self, jobs: Iterable[Job], operation: Callable[[Job], Any]) -> tuple[list[Any], list[ApplicationError]]:
        """Apply ``operation`` to each job; collect the results and the refusals."""
        done, refused = [], []
        for job in jobs:
            try:
                done.append(operation(job))
            except ApplicationError as exc:
                refused.append(exc)
        return done, refused

    def _report_refused(self, request: HttpRequest, refused: list[ApplicationError], message: Any) -> None:
        """One error message listing the services' reasons, e.g. "2 jobs could not be
        cancelled: ...". ``message`` is an ngettext_lazy() keyed on "count"."""
        if not refused:
            return
        reasons = [exc.message for exc in refused[:MAX_REASONS]]
        if len(refused) > MAX_REASONS:
            more = len(refused) - MAX_REASONS
            reasons.append(_("(and %(count)d more)") % {"count": more})
        message = message % {"count": len(refused), "reasons": " ".join(reasons)}
        self.message_user(request, message, messages.ERROR)

    @admin.action(description=gettext_lazy("Cancel selected jobs"), permissions=("operate",))
    def cancel(self, request: HttpRequest, queryset) -> None:
        done, refused = self._run(queryset, lambda job: services.job_cancel(job_id=job.pk, by=request.user))
        revoked = sum(1 for job in done if job.status == JobStatus.REVOKED)
        stopping = len(done) - revoked
        if revoked:
            message = ngettext("%(count)d job cancelled.", "%(count)d jobs cancelled.", revoked) % {"count": revoked}
            self.message_user(request, message, messages.SUCCESS)
        if stopping:
            message = ngettext(
                "Cancel requested for %(count)d running job: it stops at its next progress "
                "report or is terminated after the grace period.",
                "Cancel requested for %(count)d running jobs: they stop at their next progress "
                "report or are terminated after the grace period.",
                stopping,
            ) % {"count": stopping}
            self.message_user(request, message, messages.SUCCESS)
        self._report_refused(
            request,
            refused,
            ngettext_lazy(
                "%(count)d job could not be cancelled: %(reasons)s",
                "%(count)d jobs could not be cancelled: %(reasons)s",
                "count",
            ),
        )

    @admin.action(description=gettext_lazy("Retry selected jobs"), permissions=("operate",))
    def retry(self, request: HttpRequest, queryset) -> None:
        done, refused = self._run(queryset, lambda job: services.job_retry(job_id=job.pk, by=request.user))
        if done:
            message = ngettext("%(count)d job queued again.", "%(count)d jobs queued again.", len(done)) % {
                "count": len(done)
            }
            self.message_user(request, message, messages.SUCCESS)
        self._report_refused(
            request,
            refused,
            ngettext_lazy(
                "%(count)d job could not be retried: %(reasons)s",
                "%(count)d jobs could not be retried: %(reasons)s",
                "count",
            ),
        )

    @admin.action(description=gettext_lazy("Delete selected jobs"), permissions=("delete",))
    def delete_selected(self, request: HttpRequest, queryset) -> HttpResponse | None:
        """Replaces Django's delete_selected: confirm, then delete each job through the service.

        Active jobs are left out of the confirmation with a message (cancel them first); the
        service refuses them again if one started meanwhile.
        """
        if not request.POST.get("post"):
            active = queryset.filter(status__in=ACTIVE_STATUSES).count()
            if active:
                message = ngettext(
                    "%(count)d selected job is still active and will not be deleted: cancel it first, then delete it.",
                    "%(count)d selected jobs are still active and will not be deleted: "
                    "cancel them first, then delete them.",
                    active,
                ) % {"count": active}
                self.message_user(request, message, messages.WARNING)
            deletable = queryset.exclude(status__in=ACTIVE_STATUSES)
            if not deletable.exists():
                return None
            # Django's confirmation page; confirming posts back here with "post".
            return django_delete_selected(self, request, deletable)

        def delete(job: Job) -> None:
            with transaction.atomic():  # no deletion log entry for a refused job
                self.log_deletions(request, [job])
                services.job_delete(job_id=job.pk)

        done, refused = self._run(list(queryset), delete)
        if done:
            message = ngettext("%(count)d job deleted.", "%(count)d jobs deleted.", len(done)) % {"count": len(done)}
            self.message_user(request, message, messages.SUCCESS)
        self._report_refused(
            request,
            refused,
            ngettext_lazy(
                "%(count)d job could not be deleted: %(reasons)s",
                "%(count)d jobs could not be deleted: %(reasons)s",
                "count",
            ),
        )
        return None

    def delete_model(self, request, obj):
        services.job_delete(job_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for job_id in queryset.values_list("id", flat=True):
            services.job_delete(job_id=job_id)

    def delete_view(self, request, object_id, extra_context=None):
        """The Delete button of a job page: an active job is refused with a message."""
        job = self.get_object(request, unquote(object_id))
        if job is not None and job.is_active:
            message = _("Job “%(name)s” is %(status)s: cancel it first, then delete it.")
            self.message_user(
                request,
                message % {"name": job.name, "status": job.status},
                messages.ERROR,
            )
            return self._redirect_to_job(job.pk)
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return self._redirect_to_job(object_id)

    def response_delete(self, request, obj_display, obj_id):
        """Back to the job list (Django would go to the index: nobody may change a job)."""
        response = super().response_delete(request, obj_display, obj_id)
        if isinstance(response, HttpResponseRedirect):
            url = reverse(f"{self.admin_site.name}:jobs_job_changelist")
            response["Location"] = add_preserved_filters(
                {
                    "preserved_filters": self.get_preserved_filters(request),
                    "opts": self.opts,
                },
                url,
            )
        return response

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
        """``?ids=<uuid>,<uuid>`` -> ``{"jobs": [live state, ...]}``; staff only.

        Not wrapped in admin_view: a poller wants a 403 in JSON, not a redirect to the login page.
        """
        if not (self.admin_site.has_permission(request) and self.has_view_permission(request)):
            return JsonResponse(error_body("permission_denied", _("Staff members only.")), status=403)
        raw_ids = [part.strip() for part in request.GET.get("ids", "").split(",") if part.strip()]
        if len(raw_ids) > PROGRESS_MAX_IDS:
            message = _("ids: at most %(max)d ids at a time.") % {"max": PROGRESS_MAX_IDS}
            return JsonResponse(error_body("invalid", message), status=400)
        job_ids = [_search_uuid(raw) for raw in raw_ids]
        if None in job_ids:
            message = _("ids: a comma-separated list of job ids (UUIDs) is expected.")
            return JsonResponse(error_body("invalid", message), status=400)
        rows = selectors.job_progress(user=request.user, job_ids=job_ids)
        return JsonResponse({"jobs": [live_state(**row) for row in rows]})

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        job = self._job_for_operation(request, object_id)
        try:
            job = services.job_cancel(job_id=job.pk, by=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            if job.status == JobStatus.REVOKED:
                message = _("Job “%(name)s” cancelled.")
            else:
                message = _(
                    "Cancel requested for job “%(name)s”: it stops at its next progress report "
                    "or is terminated after the grace period."
                )
            self.message_user(request, message % {"name": job.name}, messages.SUCCESS)
        return self._redirect_to_job(job.pk)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        job = self._job_for_operation(request, object_id)
        try:
            job = services.job_retry(job_id=job.pk, by=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            message = _("Job “%(name)s” queued again (attempt %(attempt)d).")
            self.message_user(
                request,
                message % {"name": job.name, "attempt": job.attempts},
                messages.SUCCESS,
            )
        return self._redirect_to_job(job.pk)

    def _job_for_operation(self, request: HttpRequest, object_id: str) -> Job:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404(_("Job %(id)s does not exist.") % {"id": object_id})
        return job

    def _redirect_to_job(self, job_id) -> HttpResponseRedirect:
        url = reverse(
            f"{self.admin_site.name}:jobs_job_change",
            args=[quote(str(job_id))],
        )
        return HttpResponseRedirect(url)


# --- the timeline of all jobs --------------------------------------------------------------------


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    """Every job's timeline in one list: who cancelled, retried or re-queued what, and when.

    Read-only like the timeline on each job page. Newest first by primary key, which the
    table's index serves (ordering by ``at`` alone would sort the whole table).
    """

    list_display = ("at", "job_link", "kind", "transition", "actor_label", "message")
    list_filter = ("kind", "at")
    search_fields = ("job__name", "actor_label")
    search_help_text = gettext_lazy("Job name or who acted (contains), or a complete job id.")
    list_select_related = ("job",)
    list_per_page = 100
    show_full_result_count = False
    ordering = ("-id",)
    fields = (
        "job",
        "at",
        "kind",
        "transition",
        "actor",
        "actor_label",
        "message",
        "data_json",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        job_id = _search_uuid(search_term)
        if job_id is not None:
            return queryset.filter(job_id=job_id), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=gettext_lazy("job"), ordering="job__name")
    def job_link(self, event: JobEvent) -> str:
        url = reverse(f"{self.admin_site.name}:jobs_job_change", args=[quote(str(event.job_id))])
        return format_html('<a href="{}">{}</a>', url, event.job.name)

    @admin.display(description=gettext_lazy("status change"))
    def transition(self, event: JobEvent) -> str:
        if not (event.from_status or event.to_status):
            return "-"
        return f"{event.from_status or '∅'} → {event.to_status or '∅'}"

    @admin.display(description=gettext_lazy("data"))
    def data_json(self, event: JobEvent) -> str:
        return _json_block(event.data or None)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # events go with their job (deleted through jobs.services)
