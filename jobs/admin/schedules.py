"""Schedules in the admin: taskhub's own page for django-celery-beat's periodic tasks.

The add and change page is one form: a catalog task with its parameter table (as the submit
page), its arguments checked against the task's schema, the timing as an interval or a crontab
(five fields and a time zone, no pop-ups) with a preview in words and the next firings
(``jobs.schedules.timing``; ``preview/`` answers it as JSON while the fields change), and the
schedule's recent jobs. It saves through ``job_schedule_create`` / ``job_schedule_update``, the
API's services: their refusals are shown next to the field they name, and nothing is written.

Beat's own entries (taskhub's maintenance tasks) are offered to superusers only and saved with
``beat_entry_save``; to other users they are read-only, and forcing one in a POST is refused.
A schedule's name is its owner's (stored as ``user:<id>:<name>``, see jobs/schedules/fields.py).
"""

from __future__ import annotations

import json
import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.conf import settings
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

from accounts.models import User
from taskhub.errors import ApplicationError

from ..catalog import catalog
from ..models import JobPriority, JobStatus
from ..schedules import selectors as schedule_selectors
from ..schedules.fields import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH, display_name
from ..schedules.firing import job_schedule_run_now
from ..schedules.services import (
    INTERVAL_PERIODS,
    ScheduleRequest,
    beat_entry_save,
    is_system_task,
    job_schedule_adopt,
    job_schedule_check_timing,
    job_schedule_create,
    job_schedule_update,
    system_tasks,
)
from ..schedules.timing import TimingPreview, schedule_preview, stored_timing, timing_preview
from .job_state import job_state, status_badge_html
from .rendering import duration_text, when_html
from .submit import task_info, visible_entries

RECENT_RUNS = 10
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# Where a service error's field goes on the page (``interval.every`` -> ``every``).
_FORM_FIELD = {
    "interval": "every",
    "interval.every": "every",
    "interval.period": "period",
    "crontab": "minute",
    "crontab.timezone": "timezone",
    "priority": "job_priority",
    **{f"crontab.{name}": name for name in CRONTAB_FIELDS},
}


def _form_field(name: str) -> str:
    if name in _FORM_FIELD:
        return _FORM_FIELD[name]
    return name.split(".", 1)[0].split("[", 1)[0]


class ScheduleForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=NAME_MAX_LENGTH)
    task = forms.CharField(label=gettext_lazy("Task"), widget=forms.Select)
    args = forms.JSONField(
        label=gettext_lazy("args"),
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField job-json", "spellcheck": "false"}),
        help_text=gettext_lazy("Positional arguments: a JSON array, e.g. [60]."),
    )
    kwargs = forms.JSONField(
        label=gettext_lazy("kwargs"),
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField job-json", "spellcheck": "false"}),
        help_text=gettext_lazy('Keyword arguments: a JSON object, e.g. {"seconds": 60}.'),
    )
    owner = forms.ModelChoiceField(
        label=gettext_lazy("Owner"),
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        help_text=gettext_lazy("Whose jobs the firings create. Empty: you."),
    )
    job_priority = forms.ChoiceField(
        label=gettext_lazy("Job priority"),
        choices=[("", gettext_lazy("the task's default")), *JobPriority.choices],
        required=False,
        help_text=gettext_lazy("The priority (and so the queue) of each job."),
    )
    enabled = forms.BooleanField(label=gettext_lazy("Enabled"), required=False, initial=True)
    timing = forms.ChoiceField(
        label=gettext_lazy("Runs"),
        choices=[("interval", gettext_lazy("at an interval")), ("crontab", gettext_lazy("on a crontab"))],
        initial="interval",
        widget=forms.RadioSelect,
    )
    every = forms.IntegerField(label=gettext_lazy("Every"), required=False, initial=15)
    period = forms.ChoiceField(
        label=gettext_lazy("Period"), choices=[(p, p) for p in INTERVAL_PERIODS[::-1]], initial="minutes"
    )
    minute = forms.CharField(label=gettext_lazy("Minute"), required=False, initial="*", max_length=240)
    hour = forms.CharField(label=gettext_lazy("Hour"), required=False, initial="*", max_length=96)
    day_of_month = forms.CharField(label=gettext_lazy("Day of month"), required=False, initial="*", max_length=124)
    month_of_year = forms.CharField(label=gettext_lazy("Month"), required=False, initial="*", max_length=64)
    day_of_week = forms.CharField(label=gettext_lazy("Day of week"), required=False, initial="*", max_length=64)
    timezone = forms.CharField(
        label=gettext_lazy("Time zone"),
        max_length=63,
        initial=settings.TIME_ZONE,
        widget=forms.TextInput(attrs={"list": "schedule-timezones", "autocomplete": "off"}),
        help_text=gettext_lazy("The zone the crontab's fields are read in (IANA name, e.g. Europe/Paris)."),
    )
    start_time = forms.DateTimeField(
        label=gettext_lazy("Start"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"),
        help_text=gettext_lazy("Fire from this time on (your local time). Empty: now."),
    )
    expires = forms.DateTimeField(
        label=gettext_lazy("Expires"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"),
        help_text=gettext_lazy("Stop firing at this time. Empty: never."),
    )
    one_off = forms.BooleanField(label=gettext_lazy("Once"), required=False, help_text=gettext_lazy("Fire once."))
    description = forms.CharField(
        label=gettext_lazy("Description"),
        required=False,
        max_length=DESCRIPTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField"}),
    )

    def __init__(self, *args, user: User, periodic_task: PeriodicTask | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user, self.periodic_task = user, periodic_task
        catalog_choices = [(entry.name, entry.name) for entry in visible_entries(user)]
        choices: list[Any] = [("", "---------"), (_("Catalog tasks"), catalog_choices)]
        if user.is_superuser:
            choices.append((_("taskhub maintenance (beat's own entries)"), [(name, name) for name in system_tasks()]))
        if periodic_task is not None and not any(periodic_task.task == name for name, _label in catalog_choices):
            if not (user.is_superuser and is_system_task(periodic_task.task)):
                choices.append((_("Current task"), [(periodic_task.task, periodic_task.task)]))
        self.fields["task"].widget.choices = choices
        if getattr(periodic_task, "job_schedule", None) is not None:
            del self.fields["owner"]  # a schedule's owner is fixed: their name, their quotas

    def clean_task(self) -> str:
        task = self.cleaned_data["task"]
        if is_system_task(task):
            if not self.user.is_superuser:
                raise forms.ValidationError(
                    _("%(task)s is a maintenance task of taskhub: only superusers may schedule it.") % {"task": task}
                )
        elif task not in catalog:
            allowed = ", ".join(entry.name for entry in visible_entries(self.user))
            raise forms.ValidationError(
                _("%(task)r is not a task in the catalog, so it could not run as a job. Allowed tasks: %(allowed)s.")
                % {"task": task, "allowed": allowed}
            )
        if self.periodic_task is not None and is_system_task(task) != is_beat_entry(self.periodic_task):
            raise forms.ValidationError(
                _("A schedule of jobs and a maintenance entry cannot be turned into each other: add a new one.")
            )
        return task

    def clean_owner(self) -> User | None:
        owner = self.cleaned_data.get("owner")
        if owner is not None and owner != self.user and not self.user.is_superuser:
            raise forms.ValidationError(_("Only superusers may schedule jobs for another user."))
        return owner

    @property
    def is_beat_entry(self) -> bool:
        return is_system_task(self.cleaned_data.get("task", ""))

    def timing_request(self) -> ScheduleRequest:
        """The interval or the crontab, as the services take them (the other one None)."""
        data = self.cleaned_data
        if data.get("timing") == "crontab":
            crontab = {name: data.get(name) or "*" for name in CRONTAB_FIELDS}
            return {"interval": None, "crontab": {**crontab, "timezone": data.get("timezone") or ""}}
        return {"interval": {"every": data.get("every"), "period": data.get("period")}, "crontab": None}

    def schedule_request(self) -> ScheduleRequest:
        """The cleaned form as the services' request."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "task": data["task"],
            "args": data["args"] if data["args"] is not None else [],
            "kwargs": data["kwargs"] if data["kwargs"] is not None else {},
            "enabled": data["enabled"],
            "start_time": data["start_time"],
            "expires": data["expires"],
            "one_off": data["one_off"],
            "description": data["description"],
            **({} if self.is_beat_entry else {"priority": data["job_priority"] or None}),
            **self.timing_request(),
        }

    def add_service_error(self, exc: ApplicationError) -> None:
        """The service's refusal next to the fields it names, or above the form."""
        placed = False
        for name, field_messages in (exc.fields or {}).items():
            field = _form_field(name)
            if field in self.fields:
                # "interval.every: ..." says which part of the row is wrong; a message naming it already stays as is.
                named = name in ("name", "task", "description", "expires")
                self.add_error(
                    field,
                    [text if named or text.startswith(name) else f"{name}: {text}" for text in field_messages],
                )
                placed = True
        if not placed:
            self.add_error(None, exc.message)


def is_beat_entry(periodic_task: PeriodicTask) -> bool:
    """One of beat's own entries (a maintenance task), not a schedule of jobs."""
    return is_system_task(periodic_task.task)


def initial_of(periodic_task: PeriodicTask) -> dict[str, Any]:
    """The form's values for a stored periodic task."""
    schedule = getattr(periodic_task, "job_schedule", None)
    timing = stored_timing(periodic_task)
    initial: dict[str, Any] = {
        "name": display_name(periodic_task),
        "task": periodic_task.task,
        "args": json.loads(periodic_task.args or "[]"),
        "kwargs": json.loads(periodic_task.kwargs or "{}"),
        "job_priority": schedule.priority if schedule else "",
        "enabled": periodic_task.enabled,
        "start_time": periodic_task.start_time,
        "expires": periodic_task.expires,
        "one_off": periodic_task.one_off,
        "description": periodic_task.description,
        "timing": "crontab" if "crontab" in timing else "interval",
    }
    initial.update(timing.get("interval", {}))
    initial.update(timing.get("crontab", {}))
    return initial


def preview_of(form_data: Any, *, user: User) -> tuple[TimingPreview | None, dict[str, list[str]]]:
    """The preview of the timing typed in a (possibly unsaved) form, or the errors naming its fields."""
    form = ScheduleForm(form_data, user=user, periodic_task=None)
    form.is_valid()  # only the timing fields matter here
    errors = {name: form.errors[name] for name in ("timing", "every", "period", *CRONTAB_FIELDS) if name in form.errors}
    if errors:
        return None, errors
    try:
        timing = job_schedule_check_timing(form.timing_request(), owner=user, required=True)
    except ApplicationError as exc:
        return None, {_form_field(name): list(field_messages) for name, field_messages in exc.fields.items()}
    data = form.cleaned_data
    preview = timing_preview(
        **timing,
        enabled=data.get("enabled", True),
        start_time=data.get("start_time"),
        expires=data.get("expires"),
        one_off=data.get("one_off", False),
    )
    return preview, {}


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
