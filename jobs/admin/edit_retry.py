"""The job page's "Edit and retry": a failed, revoked or expired job runs again with corrected args, kwargs or
priority, through the service of the API's retry body (``job_retry``): the same checks (the task's
schema, urgent's permission), the refusal on the field it names, the change in the timeline."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from taskhub.errors import ApplicationError

from ..models import Job, JobPriority
from ..services.operations import job_retry

_JSON_WIDGET = {"class": "vLargeTextField job-json", "spellcheck": "false"}


class EditRetryForm(forms.Form):
    # Not required: Django counts [] and {} as empty; clean_args / clean_kwargs check the type.
    args = forms.JSONField(
        label=gettext_lazy("args"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, **_JSON_WIDGET}),
        help_text=gettext_lazy("Positional arguments: a JSON array."),
    )
    kwargs = forms.JSONField(
        label=gettext_lazy("kwargs"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, **_JSON_WIDGET}),
        help_text=gettext_lazy("Keyword arguments: a JSON object."),
    )
    priority = forms.ChoiceField(
        label=gettext_lazy("Priority"),
        choices=JobPriority.choices,
        help_text=gettext_lazy("urgent and high run on high_priority, normal on default, low on low_priority."),
    )

    def clean_args(self):
        if not isinstance(self.cleaned_data["args"], list):
            raise forms.ValidationError(_("Must be a JSON array."))
        return self.cleaned_data["args"]

    def clean_kwargs(self):
        if not isinstance(self.cleaned_data["kwargs"], dict):
            raise forms.ValidationError(_("Must be a JSON object."))
        return self.cleaned_data["kwargs"]

    def edits(self, job: Job) -> dict[str, Any]:
        """What differs from the job: only those go to the service (and into the timeline)."""
        return {name: value for name, value in self.cleaned_data.items() if value != getattr(job, name)}

    def add_service_error(self, exc: ApplicationError) -> None:
        """The service's refusal on the field it names (``kwargs.seconds``: kwargs), or above the form."""
        placed = False
        for key, field_messages in (exc.fields or {}).items():
            name = key.split(".", 1)[0].split("[", 1)[0]
            if name in self.fields:
                for message in field_messages:
                    self.add_error(name, message)
                placed = True
        if not placed:
            self.add_error(None, exc.message)


class EditRetry:
    """ModelAdmin mixin (with ``JobOperations``, whose permission check and redirect it uses)."""

    edit_retry_template = "admin/jobs/job/edit_retry.html"

    def edit_retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        job = self._job_for_operation(request, object_id)
        if request.method == "POST":
            form = EditRetryForm(request.POST)
            if form.is_valid():
                try:
                    job = job_retry(job_id=job.pk, by=request.user, **form.edits(job))
                except ApplicationError as exc:
                    if exc.fields:
                        form.add_service_error(exc)
                    else:  # not about a value (the job is not failed or revoked): back to its page
                        self.message_user(request, exc.message, messages.ERROR)
                        return self._redirect_to_job(job.pk)
                else:
                    message = _("Job “%(name)s” queued again (attempt %(attempt)d).")
                    self.message_user(
                        request, message % {"name": job.name, "attempt": job.attempts + 1}, messages.SUCCESS
                    )
                    return self._redirect_to_job(job.pk)
        else:
            form = EditRetryForm(initial={"args": job.args, "kwargs": job.kwargs, "priority": job.priority})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Edit and retry “%(name)s”") % {"name": job.name},
            "opts": self.opts,
            "original": job,
            "form": form,
        }
        return TemplateResponse(request, self.edit_retry_template, context)
