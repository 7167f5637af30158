"""``ScheduleAdmin``: the schedule list (timing, next run, last run) and the add/change page
(the form of :mod:`.form`, saved through the schedules services), the preview view, the recent runs."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from taskhub.errors import ApplicationError

from ...catalog import catalog
from ...models import JobStatus
from ...schedules import selectors as schedule_selectors
from ...schedules.checks import system_tasks
from ...schedules.fields import display_name
from ...schedules.firing import job_schedule_run_now
from ...schedules.services import beat_entry_save, job_schedule_adopt, job_schedule_create, job_schedule_update
from ...schedules.timing import schedule_preview
from ..job_state import job_state, status_badge_html
from ..rendering import duration_text, when_html
from ..submit import task_info, visible_entries
from .form import CRONTAB_FIELDS, ScheduleForm, initial_of, is_beat_entry, preview_of

RECENT_RUNS = 10


def recent_runs(periodic_task: PeriodicTask) -> list[dict[str, Any]]:
    """The schedule's latest jobs as the page lists them: status, started, duration, link."""
    rows = []
    for job in schedule_selectors.job_schedule_recent_jobs(periodic_task_id=periodic_task.pk, limit=RECENT_RUNS):
        ran = job.finished_at - job.started_at if job.started_at and job.finished_at else None
        rows.append(
            {
                "id": job.pk,
                "url": reverse("admin:jobs_job_change", args=[job.pk]),
                "badge": status_badge_html(job_state(job)),
                "slot": when_html(job.scheduled_for),
                "created": when_html(job.created_at),
                "started": when_html(job.started_at),
                "duration": duration_text(ran) if ran is not None else "-",
            }
        )
    return rows


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class ScheduleAdmin(PeriodicTaskAdmin):
    form_template = "admin/jobs/schedule/form.html"
    list_display = ("schedule_name", "task", "timing", "next_run", "last_run", "enabled", "job_owner")
    list_filter = ("enabled", "one_off", "task")

    class Media:
        css = {"all": ["jobs/admin/jobs.css"]}  # the last run's status badge

    def get_urls(self):
        preview = path(
            "preview/",
            self.admin_site.admin_view(self.preview_view),
            name="django_celery_beat_periodictask_preview",
        )
        return [preview, *super().get_urls()]

    def get_queryset(self, request):
        schedules = super().get_queryset(request).select_related("job_schedule__owner")
        return schedule_selectors.job_schedule_with_last_run(schedules)

    def has_change_permission(self, request, obj=None):
        """Beat's own entries are for superusers only."""
        if obj is not None and is_beat_entry(obj) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and is_beat_entry(obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    # --- the list ---------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("Name"), ordering="name")
    def schedule_name(self, obj: PeriodicTask) -> str:
        return display_name(obj)

    @admin.display(description=gettext_lazy("Timing"))
    def timing(self, obj: PeriodicTask) -> str:
        return schedule_preview(obj, count=0).rule

    @admin.display(description=gettext_lazy("Next run"))
    def next_run(self, obj: PeriodicTask) -> str:
        preview = schedule_preview(obj, count=1)
        if preview.next_runs:
            return when_html(preview.next_runs[0])
        return _("disabled") if not obj.enabled else "-"

    @admin.display(description=gettext_lazy("Last run"), ordering="last_run_at")
    def last_run(self, obj: PeriodicTask) -> str:
        if getattr(obj, "last_job_id", None) is None:
            return when_html(obj.last_run_at) if is_beat_entry(obj) else _("no job yet")
        return format_html(
            '<a href="{}"><span class="job-badge job-badge--{}">{}</span></a> {}',
            reverse("admin:jobs_job_change", args=[obj.last_job_id]),
            obj.last_job_status,
            JobStatus(obj.last_job_status).label,
            when_html(obj.last_job_created_at),
        )

    @admin.display(description=gettext_lazy("Owner"))
    def job_owner(self, obj: PeriodicTask) -> str:
        schedule = getattr(obj, "job_schedule", None)
        return schedule.owner.username if schedule else _("(beat)")

    # --- the page ---------------------------------------------------------------------------

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """``{"text": ..., "next": [ISO times]}``, or 400 ``{"errors": {field: [...]}}``."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        preview, errors = preview_of(request.GET, user=request.user)
        if preview is None:
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse({"text": preview.text, "next": [run.isoformat() for run in preview.next_runs]})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        periodic_task = None
        if object_id is not None:
            periodic_task = self.get_object(request, unquote(object_id))
            if periodic_task is None:
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
            may_save = self.has_change_permission(request, periodic_task)
            if not may_save and not self.has_view_permission(request, periodic_task):
                raise PermissionDenied
        else:
            may_save = self.has_add_permission(request)
            if not may_save:
                raise PermissionDenied
        initial = initial_of(periodic_task) if periodic_task else {"task": request.GET.get("task", "")}
        if request.method == "POST":
            if not may_save:
                raise PermissionDenied
            form = ScheduleForm(request.POST, initial=initial, user=request.user, periodic_task=periodic_task)
            if form.is_valid():
                response = self._save(request, form, periodic_task)
                if response is not None:
                    return response
        else:
            form = ScheduleForm(initial=initial, user=request.user, periodic_task=periodic_task)
        if not may_save:
            for field in form.fields.values():
                field.disabled = True
        return self._render(request, form, periodic_task, may_save=may_save, extra_context=extra_context)

    def _render(self, request, form: ScheduleForm, periodic_task, *, may_save: bool, extra_context) -> HttpResponse:
        if form.is_bound:
            preview, preview_errors = preview_of(request.POST, user=request.user)
        elif periodic_task is not None:
            preview, preview_errors = schedule_preview(periodic_task), {}
        else:
            shown = {name: form[name].value() for name in form.fields}
            preview, preview_errors = preview_of(shown, user=request.user)
        title = (
            _("Add schedule")
            if periodic_task is None
            else _("Schedule “%(name)s”") % {"name": display_name(periodic_task)}
        )
        schedule = getattr(periodic_task, "job_schedule", None)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "form": form,
            "crontab_fields": [form[name] for name in CRONTAB_FIELDS],
            "original": periodic_task,
            "may_save": may_save,
            "owner": schedule.owner if schedule else None,
            "tasks": [task_info(entry) for entry in visible_entries(request.user)],
            "chosen_task": form["task"].value(),
            "maintenance_tasks": system_tasks(),
            "preview": preview,
            "preview_errors": preview_errors,
            "preview_url": reverse("admin:django_celery_beat_periodictask_preview"),
            "timezones": _zones(),
            "recent_runs": recent_runs(periodic_task) if periodic_task and schedule else None,
            "all_jobs_url": (
                f"{reverse('admin:jobs_job_changelist')}?schedule__exact={periodic_task.pk}" if periodic_task else ""
            ),
            "media": self.media
            + forms.Media(
                js=["jobs/admin/job_submit.js", "jobs/admin/schedule_form.js"],
                css={"all": ["jobs/admin/jobs.css", "jobs/admin/schedules.css"]},
            ),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.form_template, context)

    def _save(self, request, form: ScheduleForm, periodic_task: PeriodicTask | None) -> HttpResponse | None:
        """Save through the services; None when they refused (the form then shows why)."""
        schedule_request = form.schedule_request()
        try:
            if form.is_beat_entry:
                periodic_task = beat_entry_save(
                    periodic_task_id=periodic_task.pk if periodic_task else None, by=request.user, **schedule_request
                )
            elif periodic_task is None:
                owner = form.cleaned_data.get("owner") or request.user
                periodic_task = job_schedule_create(owner=owner, **schedule_request)
            else:
                with transaction.atomic():
                    if getattr(periodic_task, "job_schedule", None) is None:  # a catalog task without an owner
                        owner = form.cleaned_data.get("owner") or request.user
                        job_schedule_adopt(periodic_task_id=periodic_task.pk, owner=owner)
                    periodic_task = job_schedule_update(periodic_task_id=periodic_task.pk, **schedule_request)
        except ApplicationError as exc:
            form.add_service_error(exc)
            return None
        added = form.periodic_task is None
        if added:
            self.log_addition(request, periodic_task, [{"added": {}}])
        else:
            self.log_change(request, periodic_task, [{"changed": {"fields": sorted(form.changed_data)}}])
        name = display_name(PeriodicTask.objects.select_related("job_schedule").get(pk=periodic_task.pk))
        message = _("Schedule “%(name)s” added.") if added else _("Schedule “%(name)s” changed.")
        self.message_user(request, message % {"name": name}, messages.SUCCESS)
        if "_continue" in request.POST:
            page = reverse("admin:django_celery_beat_periodictask_change", args=[periodic_task.pk])
            return HttpResponseRedirect(page)
        return HttpResponseRedirect(reverse("admin:django_celery_beat_periodictask_changelist"))

    @admin.action(description=gettext_lazy("Run selected tasks now"))
    def run_tasks(self, request, queryset):
        """Catalog tasks run as tracked jobs of their schedule; beat's own entries as Celery tasks."""
        job_tasks = [periodic_task for periodic_task in queryset if periodic_task.task in catalog]
        created, refused = 0, []
        for periodic_task in job_tasks:
            try:
                job_schedule_run_now(periodic_task_id=periodic_task.pk)
                created += 1
            except ApplicationError as exc:
                refused.append(f"{display_name(periodic_task)}: {exc.message}")
        if created:
            message = ngettext("%(count)d job created.", "%(count)d jobs created.", created) % {"count": created}
            self.message_user(request, message, messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.ERROR)
        others = queryset.exclude(pk__in=[periodic_task.pk for periodic_task in job_tasks])
        if others.exists():
            super().run_tasks(request, others)


@cache
def _zones() -> list[str]:
    """The IANA zones the time zone field suggests."""
    return sorted(zoneinfo.available_timezones())
