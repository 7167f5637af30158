"""Cancel, retry or delete every job matching the list's current filters and search.

The list offers "Cancel all N matching…" (and Retry, Delete) to those allowed; choosing the
list's "Select all N" with an action leads to the same place. A confirmation page first shows
how many jobs match (the list's own count: PostgreSQL's estimate on a large unfiltered table)
and how many of them the operation applies to (counted up to COUNT_UP_TO). Confirming walks the
matching jobs by primary key in batches of BATCH_SIZE and hands each one the operation applies
to to its service (``jobs.services.operations``); the others are left alone and counted. The
outcome is reported as the actions report it: what was done, what the services refused and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from taskhub.errors import ApplicationError

from ..models import ACTIVE_STATUSES, MANUAL_RETRY_STATUSES, TERMINAL_STATUSES, Job, JobStatus, status_in
from ..services.operations import job_cancel, job_delete, job_retry

# Jobs read per query while walking the matching ones.
BATCH_SIZE = 500
# The confirmation counts the jobs an operation applies to up to this many ("more than ...").
COUNT_UP_TO = 10_000


@dataclass(frozen=True)
class MatchingOperation:
    name: str
    title: Any  # the confirmation page's title
    link: Any  # the list's link when every matching job qualifies, with %(count)s
    some_link: Any  # the list's link when some do, with %(some)s and %(count)s
    applies_to: tuple[str, ...]  # the statuses the operation applies to
    applies_words: Any  # those statuses in words
    passive: Any  # "cancelled"
    confirm: Any  # the confirmation's button
    permission: str  # "operate" (job "change" permission) or "delete"


OPERATIONS = {
    operation.name: operation
    for operation in (
        MatchingOperation(
            "cancel",
            gettext_lazy("Cancel all matching jobs"),
            gettext_lazy("Cancel all %(count)s matching…"),
            gettext_lazy("Cancel %(some)s of the %(count)s matching…"),
            tuple(ACTIVE_STATUSES),
            gettext_lazy("pending or running jobs"),
            gettext_lazy("cancelled"),
            gettext_lazy("Yes, cancel them"),
            "operate",
        ),
        MatchingOperation(
            "retry",
            gettext_lazy("Retry all matching jobs"),
            gettext_lazy("Retry all %(count)s matching…"),
            gettext_lazy("Retry %(some)s of the %(count)s matching…"),
            tuple(MANUAL_RETRY_STATUSES),
            gettext_lazy("failed, revoked or expired jobs"),
            gettext_lazy("retried"),
            gettext_lazy("Yes, retry them"),
            "operate",
        ),
        MatchingOperation(
            "delete",
            gettext_lazy("Delete all matching jobs"),
            gettext_lazy("Delete all %(count)s matching…"),
            gettext_lazy("Delete %(some)s of the %(count)s matching…"),
            tuple(TERMINAL_STATUSES),
            gettext_lazy("finished jobs: active ones must be cancelled first"),
            gettext_lazy("deleted"),
            gettext_lazy("Yes, delete them"),
            "delete",
        ),
    )
}
_STATUS_ORDER = list(JobStatus.values)


def _batches(queryset, size: int) -> Iterator[list[tuple[Any, str, str]]]:
    """(id, status, name) of the jobs in ``queryset``, by primary key, ``size`` at a time."""
    rows = queryset.order_by("pk").values_list("pk", "status", "name")
    last = None
    while batch := list((rows if last is None else rows.filter(pk__gt=last))[:size]):
        yield batch
        last = batch[-1][0]


def _count_up_to(queryset, limit: int) -> tuple[int, bool]:
    """The number of rows, counting no further than ``limit``; True when there are more."""
    count = queryset.order_by()[: limit + 1].count()
    return min(count, limit), count > limit


def active_filters(cl) -> list[str]:
    """The list's filters and search in words: ``status: Failed``, ``search: “alice”``."""
    found = []
    for spec in cl.filter_specs:
        if not set(spec.expected_parameters()) & set(cl.params):
            continue
        if hasattr(spec, "terms_in_words"):  # a search box (ArgumentFilter), not a list of choices
            found.append(f"{spec.title}: {spec.terms_in_words()}")
            continue
        chosen = [str(choice["display"]) for choice in spec.choices(cl) if choice.get("selected")]
        if chosen:
            found.append(f"{spec.title}: {', '.join(chosen)}")
    if cl.date_hierarchy:
        keys = [f"{cl.date_hierarchy}__{unit}" for unit in ("year", "month", "day")]
        parts = [cl.params[key] for key in keys if key in cl.params]
        if parts:
            found.append(f"{cl.date_hierarchy}: {'-'.join(parts)}")
    if cl.query:
        found.append(_("search: “%(term)s”") % {"term": cl.query})
    return found


class MatchingOperations:
    """ModelAdmin mixin: the "all matching" operations, their links on the list and the view."""

    matching_template = "admin/jobs/job/matching_confirmation.html"

    def _may_run(self, request: HttpRequest, operation: MatchingOperation) -> bool:
        if operation.permission == "operate":
            return self.has_operate_permission(request)
        return self.has_delete_permission(request)

    def _matching_url(self, name: str) -> str:
        return reverse(f"{self.admin_site.name}:jobs_job_matching", args=[name])

    def _changelist_url(self, query: str = "") -> str:
        return reverse(f"{self.admin_site.name}:jobs_job_changelist") + ("" if query == "?" else query)

    def matching_links(self, request: HttpRequest, cl) -> list[dict[str, str]]:
        """The list's "… all N matching" links for the operations the user may run."""
        if not cl.result_count:
            return []
        count = str(cl.result_count)
        if getattr(cl.paginator, "estimated", False):
            count = _("about %(count)s") % {"count": count}
        query = cl.get_query_string(remove=[PAGE_VAR])
        query = "" if query == "?" else query
        links = []
        for name, operation in OPERATIONS.items():
            if not self._may_run(request, operation):
                continue
            # Offered only when some matching jobs qualify (Experience e), with how many.
            qualify, more = _count_up_to(cl.queryset.filter(status_in(operation.applies_to)), COUNT_UP_TO)
            if not qualify:
                continue
            if not more and not getattr(cl.paginator, "estimated", False) and qualify == cl.result_count:
                label = operation.link % {"count": count}
            else:
                some = _("more than %(count)s") % {"count": qualify} if more else str(qualify)
                label = operation.some_link % {"some": some, "count": count}
            links.append({"url": self._matching_url(name) + query, "label": label})
        return links

    def matching_redirect(self, request: HttpRequest, name: str) -> HttpResponseRedirect:
        """To the confirmation of operation ``name`` on everything the list's filters match."""
        query = request.GET.urlencode()
        return HttpResponseRedirect(self._matching_url(name) + (f"?{query}" if query else ""))

    def matching_view(self, request: HttpRequest, operation: str) -> HttpResponse:
        spec = OPERATIONS.get(operation)
        if spec is None:
            raise Http404(_("No such operation: %(name)s.") % {"name": operation})
        if not self._may_run(request, spec):
            raise PermissionDenied
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            self.message_user(request, _("These filters are not valid: %(error)s") % {"error": exc}, messages.ERROR)
            return HttpResponseRedirect(self._changelist_url())
        back = self._changelist_url(cl.get_query_string(remove=[PAGE_VAR]))
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._run_matching(request, spec, cl.queryset)
            return HttpResponseRedirect(back)
        return TemplateResponse(request, self.matching_template, self._confirmation_context(request, spec, cl, back))

    def _confirmation_context(self, request: HttpRequest, spec: MatchingOperation, cl, back: str) -> dict[str, Any]:
        count = cl.result_count
        if getattr(cl.paginator, "estimated", False):
            matched = _("about %(count)d jobs match") % {"count": count}
        else:
            matched = ngettext("%(count)d job matches", "%(count)d jobs match", count) % {"count": count}
        applicable, more = _count_up_to(cl.queryset.filter(status_in(spec.applies_to)), COUNT_UP_TO)
        words = {"count": applicable, "passive": spec.passive, "which": spec.applies_words}
        if not applicable:
            applies = _("none of them can be %(passive)s: only %(which)s can.")
        elif more:
            applies = _("more than %(count)d of them can be %(passive)s (%(which)s); the others are left alone.")
        else:
            applies = _("%(count)d of them can be %(passive)s (%(which)s); the others are left alone.")
        applies %= words
        query = request.GET.urlencode()
        return {
            **self.admin_site.each_context(request),
            "title": spec.title,
            "opts": self.opts,
            "operation": spec,
            "matched": matched,
            "applies": applies,
            "applicable": applicable,
            "filters": active_filters(cl),
            "action_url": request.path + (f"?{query}" if query else ""),
            "back_url": back,
            "media": self.media,
        }

    def _run_matching(self, request: HttpRequest, spec: MatchingOperation, queryset) -> None:
        done, refused, left_alone = [], [], Counter()
        for batch in _batches(queryset, BATCH_SIZE):
            for job_id, status, name in batch:
                if status not in spec.applies_to:
                    left_alone[status] += 1
                    continue
                try:
                    done.append(self._apply(request, spec.name, job_id, status, name))
                except ApplicationError as exc:
                    refused.append(exc)
        self.report_outcome(request, spec.name, done, refused)
        if left_alone:
            count = sum(left_alone.values())
            statuses = ", ".join(f"{left_alone[status]} {status}" for status in _STATUS_ORDER if left_alone[status])
            message = ngettext(
                "%(count)d matching job was left alone: %(statuses)s.",
                "%(count)d matching jobs were left alone: %(statuses)s.",
                count,
            ) % {"count": count, "statuses": statuses}
            self.message_user(request, message, messages.INFO)

    def _apply(self, request: HttpRequest, operation: str, job_id, status: str, name: str) -> Job | None:
        if operation == "cancel":
            return job_cancel(job_id=job_id, by=request.user)
        if operation == "retry":
            return job_retry(job_id=job_id, by=request.user)
        with transaction.atomic():  # no deletion log entry for a refused job
            self.log_deletions(request, [Job(pk=job_id, status=status, name=name)])
            job_delete(job_id=job_id)
        return None
