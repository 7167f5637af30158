"""Acting on jobs from the admin: cancel, retry and delete, as actions on the list and from the
job page, each through the same services as the API (``jobs.services.operations``).

The services decide what may happen (a succeeded job is not retried, an active one not
deleted); the admin reports their refusals as messages rather than checking first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, ngettext_lazy

from taskhub.errors import ApplicationError

from ..models import ACTIVE_STATUSES, Job, JobEvent, JobStatus
from ..services.operations import job_cancel, job_delete, job_retry

# How many refusal reasons one message lists before "and N more".
MAX_REASONS = 5

# What the actions report, keyed on "count" (the number of jobs).
CANCELLED = ngettext_lazy("%(count)d job cancelled.", "%(count)d jobs cancelled.", "count")
CANCEL_REQUESTED = ngettext_lazy(
    "Cancel requested for %(count)d running job: it stops at its next progress "
    "report or is terminated after the grace period.",
    "Cancel requested for %(count)d running jobs: they stop at their next progress "
    "report or are terminated after the grace period.",
    "count",
)
QUEUED_AGAIN = ngettext_lazy("%(count)d job queued again.", "%(count)d jobs queued again.", "count")
DELETED = ngettext_lazy("%(count)d job deleted.", "%(count)d jobs deleted.", "count")
CANCEL_REFUSED = ngettext_lazy(
    "%(count)d job could not be cancelled: %(reasons)s",
    "%(count)d jobs could not be cancelled: %(reasons)s",
    "count",
)
RETRY_REFUSED = ngettext_lazy(
    "%(count)d job could not be retried: %(reasons)s",
    "%(count)d jobs could not be retried: %(reasons)s",
    "count",
)
DELETE_REFUSED = ngettext_lazy(
    "%(count)d job could not be deleted: %(reasons)s",
    "%(count)d jobs could not be deleted: %(reasons)s",
    "count",
)


REFUSED = {"cancel": CANCEL_REFUSED, "retry": RETRY_REFUSED, "delete": DELETE_REFUSED}


def _selects_across(request: HttpRequest) -> bool:
    """The list's "Select all N" was used: the action applies to every matching job, which the
    "all matching" operations (``matching``) do with a confirmation and in batches."""
    return request.POST.get("select_across") == "1"


def _run(jobs: Iterable[Job], operation: Callable[[Job], Any]) -> tuple[list[Any], list[ApplicationError]]:
    """Apply ``operation`` to each job; collect the results and the refusals."""
    done, refused = [], []
    for job in jobs:
        try:
            done.append(operation(job))
        except ApplicationError as exc:
            refused.append(exc)
    return done, refused


class JobOperations:
    """ModelAdmin mixin for jobs: the actions ``cancel``, ``retry`` and ``delete_selected``, the
    job page's Cancel/Retry views and Django's delete hooks, all through the services.
    Cancel and retry are gated by the admin's ``has_operate_permission``. With "Select all N"
    the actions lead to the "all matching" operations (``matching_redirect``)."""

    # --- actions on the list ---

    @admin.action(description=gettext_lazy("Cancel selected jobs"), permissions=("operate",))
    def cancel(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if _selects_across(request):
            return self.matching_redirect(request, "cancel")
        done, refused = _run(queryset, lambda job: job_cancel(job_id=job.pk, by=request.user))
        self.report_outcome(request, "cancel", done, refused)
        return None

    @admin.action(description=gettext_lazy("Retry selected jobs"), permissions=("operate",))
    def retry(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if _selects_across(request):
            return self.matching_redirect(request, "retry")
        done, refused = _run(queryset, lambda job: job_retry(job_id=job.pk, by=request.user))
        self.report_outcome(request, "retry", done, refused)
        return None

    @admin.action(description=gettext_lazy("Delete selected jobs"), permissions=("delete",))
    def delete_selected(self, request: HttpRequest, queryset) -> HttpResponse | None:
        """Replaces Django's delete_selected: confirm, then delete each job through the service.

        Active jobs are left out of the confirmation with a message (cancel them first); the
        service refuses them again if one started meanwhile.
        """
        if _selects_across(request):
            return self.matching_redirect(request, "delete")
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
                job_delete(job_id=job.pk)

        done, refused = _run(list(queryset), delete)
        self.report_outcome(request, "delete", done, refused)
        return None

    def report_outcome(self, request: HttpRequest, operation: str, done: list, refused: list[ApplicationError]) -> None:
        """What ``operation`` (cancel, retry, delete) did: a success message per outcome and one
        error message with the services' reasons for the refusals."""
        if operation == "cancel":
            revoked = sum(1 for job in done if job.status == JobStatus.REVOKED)
            self._report_done(request, CANCELLED, revoked)
            self._report_done(request, CANCEL_REQUESTED, len(done) - revoked)
        else:
            self._report_done(request, QUEUED_AGAIN if operation == "retry" else DELETED, len(done))
        self._report_refused(request, refused, REFUSED[operation])

    def _report_done(self, request: HttpRequest, message: Any, count: int) -> None:
        """A success message for ``count`` jobs, if any; ``message`` is keyed on "count"."""
        if count:
            self.message_user(request, message % {"count": count}, messages.SUCCESS)

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

    # --- the job page's Cancel and Retry buttons ---

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def cancelled(job: Job) -> str:
            if job.status == JobStatus.REVOKED:
                message = _("Job “%(name)s” cancelled.")
            else:
                message = _(
                    "Cancel requested for job “%(name)s”: it stops at its next progress report "
                    "or is terminated after the grace period."
                )
            return message % {"name": job.name}

        return self._operate(request, object_id, job_cancel, cancelled)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def queued(job: Job) -> str:
            message = _("Job “%(name)s” queued again (attempt %(attempt)d).")
            return message % {"name": job.name, "attempt": job.attempts + 1}

        return self._operate(request, object_id, job_retry, queued)

    def _operate(
        self,
        request: HttpRequest,
        object_id: str,
        service: Callable[..., Job],
        success_message: Callable[[Job], str],
    ) -> HttpResponse:
        """Run ``service`` (job_cancel, job_retry) on the page's job; back to the page with a message."""
        job = self._job_for_operation(request, object_id)
        try:
            job = service(job_id=job.pk, by=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, success_message(job), messages.SUCCESS)
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

    # --- Django's delete hooks: the page's Delete button ---

    def delete_model(self, request, obj):
        job_delete(job_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for job_id in queryset.values_list("id", flat=True):
            job_delete(job_id=job_id)

    def get_deleted_objects(self, objs, request):
        """A job's timeline goes with it; the read-only event admin must not block that."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(JobEvent._meta.verbose_name)
        return deleted, model_count, perms_needed, protected

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
