"""Submitting a job from the admin (the job admin's add page).

An operator picks a task from the catalog, reads its description and parameters (the catalog's
JSON Schema, shown as a table) and enters args/kwargs as JSON. The job is created by
``jobs.services.creation.job_create``, the same service as the API: its refusals become errors
on the field they name, and nothing is written. Each form carries an idempotency key, so a
double click or a resent form makes one job.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from taskhub.errors import ApplicationError

from ..catalog import CONCURRENCY_KEY_MAX, CONCURRENCY_LIMIT_MAX, CatalogEntry, catalog
from ..models import JobPriority, UniquePolicy
from ..parameters import describe_schema
from ..services.creation import job_create

# As the API's create serializer allows.
MAX_RETRIES_LIMIT = 20
# Where the service's field names go in this form.
_FORM_FIELD = {
    "celery_task_name": "task",
    "unique.key": "unique_key",
    "unique.policy": "unique_policy",
    "unique.period": "unique_period",
    "unique.max_wait": "unique_max_wait",
    "concurrency": "concurrency_key",
    "concurrency.key": "concurrency_key",
    "concurrency.limit": "concurrency_limit",
}


def visible_entries(user) -> list[CatalogEntry]:
    """The catalog tasks this user may run (staff-only ones for staff)."""
    return [entry for entry in catalog.entries() if user.is_staff or not entry.staff_only]


def parameter_rows(schema: dict[str, Any]) -> dict[str, Any]:
    """A task's parameter schema as the table the form shows: each parameter with how to pass it
    and what it accepts, then what else is accepted."""
    positional = schema.get("x-positional-order", [])
    required = set(schema.get("required", []))
    rows = []
    for name, parameter in schema.get("properties", {}).items():
        where = f"args[{positional.index(name)}] or kwargs" if name in positional else "kwargs"
        rows.append({"name": name, "where": where, "accepts": describe_schema(parameter, required=name in required)})
    extra = []
    if "x-var-positional" in schema:
        extra.append(f"More positional arguments: {describe_schema(schema['x-var-positional'])}")
    additional = schema.get("additionalProperties", True)
    if additional is not False:
        extra.append("Any other keyword argument" + ("" if additional is True else f": {describe_schema(additional)}"))
    return {"rows": rows, "extra": extra}


def task_info(entry: CatalogEntry) -> dict[str, Any]:
    """What the form shows of a task: description, policy and parameters."""
    return {
        "name": entry.name,
        "description": entry.description,
        "priority": entry.priority,
        "queue": entry.queue,
        "max_retries": entry.retry.max_retries,
        "time_limit": entry.time_limit,
        "cancellable": entry.cancellable,
        "parameters": parameter_rows(entry.parameters_schema()),
    }


def args_field() -> forms.JSONField:
    """A job's positional arguments as a JSON text area (the submit page, the schedule page)."""
    return forms.JSONField(
        label=gettext_lazy("args"),
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField job-json", "spellcheck": "false"}),
        help_text=gettext_lazy("Positional arguments: a JSON array, e.g. [60]."),
    )


def kwargs_field(*, rows: int) -> forms.JSONField:
    """A job's keyword arguments as a JSON text area (the submit page, the schedule page)."""
    return forms.JSONField(
        label=gettext_lazy("kwargs"),
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": rows, "class": "vLargeTextField job-json", "spellcheck": "false"}),
        help_text=gettext_lazy('Keyword arguments: a JSON object, e.g. {"seconds": 60}.'),
    )


class JobSubmitForm(forms.Form):
    task = forms.ChoiceField(label=gettext_lazy("Task"))
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("Defaults to the task's name."),
    )
    task_type = forms.CharField(
        label=gettext_lazy("Label"),
        max_length=100,
        required=False,
        help_text=gettext_lazy("A free label for grouping (the API's task_type)."),
    )
    args = args_field()
    kwargs = kwargs_field(rows=4)
    priority = forms.ChoiceField(
        label=gettext_lazy("Priority"),
        required=False,
        choices=[("", gettext_lazy("the task's default")), *JobPriority.choices],
        help_text=gettext_lazy("urgent and high run on high_priority, normal on default, low on low_priority."),
    )
    max_retries = forms.IntegerField(
        label=gettext_lazy("Automatic retries"),
        required=False,
        min_value=0,
        max_value=MAX_RETRIES_LIMIT,
        help_text=gettext_lazy("After a failure; empty: the task's retry policy."),
    )
    unique_key = forms.CharField(
        label=gettext_lazy("Unique key"),
        max_length=255,
        required=False,
        help_text=gettext_lazy("A second job with this key is deduplicated (README “Unique jobs”)."),
    )
    unique_policy = forms.ChoiceField(
        label=gettext_lazy("Unique policy"),
        required=False,
        choices=[("", gettext_lazy("no rule (the task's default)")), *UniquePolicy.choices],
        help_text=gettext_lazy("Without a key, the key is derived from the task and its arguments."),
    )
    unique_period = forms.FloatField(
        label=gettext_lazy("Unique period (s)"), required=False, help_text=gettext_lazy("throttle, debounce.")
    )
    unique_max_wait = forms.FloatField(
        label=gettext_lazy("Unique max wait (s)"), required=False, help_text=gettext_lazy("debounce.")
    )
    concurrency_key = forms.CharField(
        label=gettext_lazy("Concurrency key"),
        max_length=CONCURRENCY_KEY_MAX,
        required=False,
        help_text=gettext_lazy("At most the limit below of jobs with this key run at once; the others wait."),
    )
    concurrency_limit = forms.IntegerField(
        label=gettext_lazy("Concurrency limit"),
        required=False,
        min_value=1,
        max_value=CONCURRENCY_LIMIT_MAX,
        help_text=gettext_lazy("With a key; empty: 1."),
    )
    submission = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def __init__(self, *args, entries: list[CatalogEntry], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task"].choices = [("", "---------"), *((entry.name, entry.name) for entry in entries)]

    def job_request(self) -> dict[str, Any]:
        """The cleaned form as the service's request (empty values take the task's defaults)."""
        data = self.cleaned_data
        return {
            "celery_task_name": data["task"],
            "name": data["name"] or None,
            "task_type": data["task_type"],
            "args": data["args"],
            "kwargs": data["kwargs"],
            "priority": data["priority"] or None,
            "max_retries": data["max_retries"],
            "unique": self.unique_rule(),
            "concurrency": {"key": data["concurrency_key"], "limit": data["concurrency_limit"] or 1}
            if data["concurrency_key"]
            else None,
        }

    def unique_rule(self) -> dict[str, Any] | None:
        """The API's ``unique`` object from the unique_* fields; None when none is filled in."""
        data = self.cleaned_data
        rule = {
            name: data[f"unique_{name}"]
            for name in ("key", "policy", "period", "max_wait")
            if data.get(f"unique_{name}") not in (None, "")
        }
        return rule or None

    def clean(self):
        data = super().clean()
        if data.get("concurrency_limit") is not None and not data.get("concurrency_key"):
            self.add_error("concurrency_key", gettext_lazy("Give the key the limit is for."))
        return data

    def add_service_error(self, exc: ApplicationError) -> None:
        """The service's refusal on the fields it names, or above the form."""
        placed = False
        for key, field_messages in exc.fields.items():
            name = _FORM_FIELD.get(key, key)
            if name in self.fields:
                for message in field_messages:
                    self.add_error(name, message)
                placed = True
        if not placed:
            self.add_error(None, exc.message)

    def renew_submission(self) -> None:
        """A new idempotency key, so that submitting this form again makes a new job."""
        self.data = self.data.copy()
        self.data["submission"] = str(uuid.uuid4())


class JobSubmission:
    """ModelAdmin mixin: the add page submits a job through ``job_create``."""

    submit_template = "admin/jobs/job/submit_form.html"

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        entries = visible_entries(request.user)
        if request.method == "POST":
            form = JobSubmitForm(request.POST, entries=entries)
            if form.is_valid():
                response = self._submit(request, form)
                if response is not None:
                    return response
        else:
            chosen = request.GET.get("task")
            initial = {"task": chosen} if chosen in {entry.name for entry in entries} else {}
            form = JobSubmitForm(initial=initial, entries=entries)
        chosen = form["task"].value()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Submit a job"),
            "opts": self.opts,
            "form": form,
            "tasks": [task_info(entry) for entry in entries],
            "chosen_task": chosen,
            "media": self.media + forms.Media(js=["jobs/admin/job_submit.js"]),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.submit_template, context)

    def _submit(self, request: HttpRequest, form: JobSubmitForm) -> HttpResponse | None:
        """Create the job; None when the service refused (the form then shows why)."""
        key = f"admin-{form.cleaned_data['submission']}"
        try:
            job = job_create(owner=request.user, idempotency_key=key, **form.job_request())
        except ApplicationError as exc:
            if exc.code == "idempotency_key_reused":
                form.renew_submission()
                form.add_error(
                    None,
                    _(
                        "This form was already submitted with other values and made a job. Nothing was "
                        "submitted now: check the values and submit again to make another job."
                    ),
                )
            else:
                form.add_service_error(exc)
            return None
        outcome = getattr(job, "dedupe_outcome", None)
        if outcome not in (None, "cancelled_running"):
            note = _("Not submitted: job “%(name)s” holds the unique key %(key)s (%(outcome)s).")
            self.message_user(request, note % {"name": job.name, "key": job.unique_key, "outcome": outcome})
            return self._redirect_to_job(job.pk)
        self.log_addition(request, job, [{"added": {}}])
        self.message_user(request, _("Job “%(name)s” submitted.") % {"name": job.name}, messages.SUCCESS)
        return self._redirect_to_job(job.pk)
