"""How an operator narrows the job and event lists: a complete job id finds its job, and the
queue and task filters offer the configured choices rather than a DISTINCT over every job."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import admin
from django.utils.translation import gettext_lazy

from ..catalog import catalog


def parse_job_id(text: str) -> uuid.UUID | None:
    """``text`` as a job id; None unless it is a complete UUID."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


class JobIdSearch:
    """ModelAdmin mixin: a complete job id is looked up exactly (``job_id_lookup``); other
    terms search the text fields."""

    job_id_lookup = "id"

    def get_search_results(self, request, queryset, search_term):
        job_id = parse_job_id(search_term)
        if job_id is not None:
            return queryset.filter(**{self.job_id_lookup: job_id}), False
        return super().get_search_results(request, queryset, search_term)


class QueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue, queue) for queue in settings.JOB_QUEUES]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TaskFilter(admin.SimpleListFilter):
    """The registered tasks (from the catalog) rather than a DISTINCT over every job."""

    title = gettext_lazy("task")
    parameter_name = "celery_task_name"

    def lookups(self, request, model_admin):
        return [(entry.name, entry.name.rsplit(".", 1)[-1]) for entry in catalog.entries()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(celery_task_name=self.value())
        return queryset
