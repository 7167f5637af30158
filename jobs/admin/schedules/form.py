"""The schedule page's form: its fields, the values of a stored periodic task, the services'
request it makes, where their refusals go, and the preview of the timing being typed."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_celery_beat.models import PeriodicTask

from accounts.models import User
from taskhub.errors import ApplicationError

from ...catalog import catalog
from ...models import JobPriority
from ...schedules.checks import (
    INTERVAL_PERIODS,
    ScheduleRequest,
    is_system_task,
    job_schedule_check_timing,
    system_tasks,
)
from ...schedules.fields import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH, display_name
from ...schedules.timing import TimingPreview, stored_timing, timing_preview
from ..submit import args_field, kwargs_field, visible_entries

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
    args = args_field()
    kwargs = kwargs_field(rows=3)
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
