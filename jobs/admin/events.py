"""The timeline of all jobs: every stored JobEvent in one read-only list. A job's ordinary lines
(created, started, succeeded of its current run) are derived from its row (jobs/timeline.py) and shown
on its own page and in the API; the list says so at its top."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from ..models import JobEvent
from .filters import CheckedLookups, JobIdSearch
from .rendering import json_block_html, when_column

STORED_ONLY = gettext_lazy(
    "Stored lines: operator actions, failures, retries, cancels, holds and recoveries. A job's ordinary "
    "created, started and succeeded lines are derived from each job's own row and shown on its page and "
    "by GET /api/v1/jobs/{id}/events/, not in this list."
)


@admin.register(JobEvent)
class JobEventAdmin(CheckedLookups, JobIdSearch, admin.ModelAdmin):
    """Every job's timeline in one list: who cancelled, retried or re-queued what, and when.

    Read-only like the timeline on each job page. Newest first by primary key, which the
    table's index serves (ordering by ``at`` alone would sort the whole table).
    """

    list_display = ("at_when", "job_link", "kind", "transition", "actor_label", "message")
    list_filter = ("kind", "at")
    search_fields = ("job__name", "actor_label")
    search_help_text = gettext_lazy("Job name or who acted (contains), or a complete job id.")
    job_id_lookup = "job_id"
    list_select_related = ("job",)
    list_per_page = 100
    show_full_result_count = False
    ordering = ("-id",)
    fields = (
        "job",
        "at_when",
        "kind",
        "transition",
        "actor",
        "actor_label",
        "message",
        "data_json",
    )
    readonly_fields = fields

    at_when = when_column("at", gettext_lazy("at"))

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
        return json_block_html(event.data or None)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"subtitle": STORED_ONLY, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # events go with their job (deleted through jobs.services)
