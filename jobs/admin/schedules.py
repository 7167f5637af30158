"""django-celery-beat's periodic task admin, made to schedule tracked jobs.

A periodic task may run a catalog task (its arguments checked against the task's schema, as a
job's are) or, for superusers only, one of beat's own maintenance entries. Anything else is
refused when saved: beat would send it and no worker would run it as a job. A catalog task's
schedule has an owner and a job priority (``JobSchedule``); left empty, the owner is the admin
user who saves it. Its name is its owner's (stored as ``user:<id>:<name>``, shown as given; see
jobs/schedules/fields.py). The page lists the schedule's recent jobs with their status.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy, ngettext
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from accounts.models import User
from taskhub.errors import ApplicationError

from ..catalog import catalog
from ..models import JobPriority
from ..schedules import selectors as schedule_selectors
from ..schedules.fields import display_name
from ..schedules.firing import job_schedule_run_now
from ..schedules.services import is_system_task, job_schedule_check, job_schedule_check_name, job_schedule_set_owner
from .rendering import when_html

BROKER_OPTIONS = ("queue", "exchange", "routing_key", "priority")


def _form_field(name: str) -> str:
    """The form field for a service error's field name (``kwargs.seconds`` -> ``kwargs``)."""
    root = name.split(".", 1)[0].split("[", 1)[0]
    return {"priority": "job_priority", "celery_task_name": "task"}.get(root, root)


class ScheduleForm(PeriodicTaskForm):
    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        help_text=gettext_lazy("Catalog tasks: whose jobs the firings create. Empty: you."),
    )
    job_priority = forms.ChoiceField(
        choices=[("", gettext_lazy("The task's default")), *JobPriority.choices],
        required=False,
        label=gettext_lazy("Job priority"),
        help_text=gettext_lazy("Catalog tasks: the priority (and so the queue) of each job."),
    )
    current_user: User  # set by ScheduleAdmin.get_form

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        schedule = getattr(self.instance, "job_schedule", None) if self.instance.pk else None
        if schedule is not None:
            self.initial["name"] = display_name(self.instance)
            self.initial.setdefault("owner", schedule.owner_id)
            self.initial.setdefault("job_priority", schedule.priority)
        self.job_owner: User | None = None
        self.job_priority: str | None = None

    def clean(self):
        data = super().clean()
        task = data.get("task") or ""
        if task in catalog:
            self._clean_job(data, task)
        elif is_system_task(task):
            if not self.current_user.is_superuser:
                self.add_error("task", f"{task} is a maintenance task of taskhub: only superusers may schedule it.")
        else:
            allowed = ", ".join(entry.name for entry in catalog.entries())
            message = f"{task!r} is not a task in the catalog, so it could not run as a job. Allowed tasks: {allowed}."
            self.add_error("task", message)
        return data

    def _clean_job(self, data: dict, task: str) -> None:
        for option in BROKER_OPTIONS:
            if data.get(option) not in (None, ""):
                self.add_error(option, "A catalog task's job goes to the queue of its job priority: leave this empty.")
        if "args" not in data or "kwargs" not in data:
            return  # not JSON: already reported on the field
        current = getattr(getattr(self.instance, "job_schedule", None), "owner", None)
        owner = data.get("owner") or current or self.current_user
        if owner not in (current, self.current_user) and not self.current_user.is_superuser:
            self.add_error("owner", "Only superusers may schedule jobs for another user.")
            return
        try:
            spec = job_schedule_check(
                owner=owner,
                task=task,
                args=json.loads(data["args"] or "[]"),
                kwargs=json.loads(data["kwargs"] or "{}"),
                priority=data.get("job_priority") or None,
            )
        except ApplicationError as exc:
            for name, field_messages in (exc.fields or {"task": [exc.message]}).items():
                self.add_error(_form_field(name), [f"{name}: {message}" for message in field_messages])
            return
        data["task"] = spec.entry.name
        self.job_owner, self.job_priority = owner, spec.priority
        if data.get("name"):
            try:
                data["name"] = job_schedule_check_name(data["name"], owner=owner, periodic_task_id=self.instance.pk)
            except ApplicationError as exc:
                self.add_error("name", exc.fields["name"])


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class ScheduleAdmin(PeriodicTaskAdmin):
    form = ScheduleForm
    list_display = ("schedule_name", *PeriodicTaskAdmin.list_display[1:], "job_owner")
    fieldsets = (
        PeriodicTaskAdmin.fieldsets[0],
        (gettext_lazy("Job"), {"fields": ("owner", "job_priority"), "classes": ("extrapretty", "wide")}),
        *PeriodicTaskAdmin.fieldsets[1:],
        (gettext_lazy("Recent runs"), {"fields": ("recent_runs",), "classes": ("extrapretty", "wide")}),
    )
    readonly_fields = (*PeriodicTaskAdmin.readonly_fields, "recent_runs")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"current_user": request.user})

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job_schedule__owner")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        job_schedule_set_owner(periodic_task=obj, owner=form.job_owner, priority=form.job_priority)

    @admin.display(description=gettext_lazy("Name"), ordering="name")
    def schedule_name(self, obj: PeriodicTask) -> str:
        return display_name(obj)

    @admin.display(description=gettext_lazy("Owner"))
    def job_owner(self, obj: PeriodicTask) -> str:
        schedule = getattr(obj, "job_schedule", None)
        return schedule.owner.username if schedule else "-"

    @admin.display(description=gettext_lazy("Recent jobs"))
    def recent_runs(self, obj: PeriodicTask) -> str:
        jobs = schedule_selectors.job_schedule_recent_jobs(periodic_task_id=obj.pk) if obj.pk else []
        if not jobs:
            return gettext_lazy("No job yet.")
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:jobs_job_change", args=[job.pk]),
                    job.pk,
                    job.get_status_display(),
                    when_html(job.scheduled_for),
                    when_html(job.created_at),
                    when_html(job.finished_at),
                )
                for job in jobs
            ),
        )
        link = reverse("admin:jobs_job_changelist")
        return format_html(
            '<table class="schedule-runs"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>'
            '</thead><tbody>{}</tbody></table><p><a href="{}?schedule__exact={}">{}</a></p>',
            gettext_lazy("Job"),
            gettext_lazy("Status"),
            gettext_lazy("Slot"),
            gettext_lazy("Created"),
            gettext_lazy("Finished"),
            rows,
            link,
            obj.pk,
            gettext_lazy("All jobs of this schedule"),
        )

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
