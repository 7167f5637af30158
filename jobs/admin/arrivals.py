"""The job list's arrivals: jobs created since the page was rendered, under its filters.

The list page carries when it was rendered (``data-since``) and the URL of the staff-only
``arrivals/`` view; ``jobs/admin/job_arrivals.js`` asks it every few seconds, shows "N new jobs —
show" (a link to the list's first page with the same filters) and keeps the list's "N jobs" count
current. The view builds the list's own ChangeList from the list's query string, so it counts
exactly what the page would list: its filters, its search, the jobs the user may see
(``get_queryset``: ``selectors.job_list``).
"""

from __future__ import annotations

import copy

from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR
from django.http import HttpRequest, JsonResponse, QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from taskhub.errors import error_body

SINCE = "since"


def count_text(count: int, opts) -> str:
    """ "1 job", "4 jobs": as the list's paginator says it."""
    name = opts.verbose_name if count == 1 else opts.verbose_name_plural
    return f"{count} {name}"


def first_page_url(request: HttpRequest) -> str:
    """The list as shown, from its first page (where new jobs are listed first)."""
    query = request.GET.copy()
    query.pop(PAGE_VAR, None)
    return f"{request.path}?{query.urlencode()}" if query else request.path


def _invalid(message: str) -> JsonResponse:
    return JsonResponse(error_body("invalid", message), status=400)


class JobArrivals:
    """ModelAdmin mixin: the ``arrivals/`` view (JSON) and what the list page tells its poller."""

    def arrivals_context(self, request: HttpRequest, url: str) -> dict[str, str]:
        """For the list page: when it was rendered (taken before its rows are read), the view's URL
        and the link that shows the new jobs."""
        return {
            "job_list_since": timezone.now().isoformat(),
            "job_arrivals_url": url,
            "job_arrivals_show_url": first_page_url(request),
        }

    def arrivals_view(self, request: HttpRequest) -> JsonResponse:
        """``?since=<ISO time with its offset>&<the list's query string>`` ->
        ``{"new": jobs created after since, "count": the list's count, "count_text": "N jobs"}``.

        Staff only; not wrapped in admin_view: a poller wants a 403 in JSON, not a redirect to
        the login page. A bad ``since`` or filter is a 400 naming it."""
        if not (self.admin_site.has_permission(request) and self.has_view_permission(request)):
            return JsonResponse(
                error_body("permission_denied", _("Staff members with the view permission only.")), status=403
            )
        query: QueryDict = request.GET.copy()
        raw = query.pop(SINCE, [""])[-1]
        try:
            since = parse_datetime(raw)
        except ValueError:
            since = None
        if since is None or timezone.is_naive(since):
            return _invalid(
                _("since: an ISO 8601 time with its UTC offset is expected (the page's data-since), got %(value)r.")
                % {"value": raw}
            )
        listing = copy.copy(request)
        listing.GET = query
        try:
            changelist = self.get_changelist_instance(listing)
        except (IncorrectLookupParameters, DisallowedModelAdminLookup) as exc:
            return _invalid(_("filters: the list's filters are not valid (%(error)s).") % {"error": exc})
        new = changelist.queryset.filter(created_at__gt=since).count()  # running jobs apart: JobAdmin.get_queryset
        count = changelist.result_count
        return JsonResponse({"new": new, "count": count, "count_text": count_text(count, self.opts)})
