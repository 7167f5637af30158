"""How an operator narrows the job and event lists: a complete job id finds its job, and the
queue and task filters offer the configured choices rather than a DISTINCT over every job; the
worker filter offers the workers of the running jobs."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, FullResultSet
from django.utils.translation import gettext_lazy

from ..catalog import catalog
from ..filters import ARGUMENT_FILTERS, JobFilter, filter_by_arguments
from ..models import ACTIVE_STATUSES, Job, JobStatus


def parse_job_id(text: str) -> uuid.UUID | None:
    """``text`` as a job id; None unless it is a complete UUID."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


POSTGRESQL_MAX_OFFSET = timedelta(hours=16)
MAX_WORKER_CHOICES = 50


class CheckedLookups:
    """ModelAdmin mixin: a filter value the database cannot take is an incorrect lookup (Django's
    "?e=1" page), not a 500: a time that leaves the calendar once converted to UTC
    (``created_at__gte=0001-01-01T00:00:00+01:00``), a day number past any int, or a UTC offset
    beyond PostgreSQL's ±15:59 (Python reads up to ±23:59). Compiling the list's query finds
    them without running it."""

    def get_changelist(self, request, **kwargs):
        return CheckedChangeList


class CheckedChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            _, params = queryset.query.sql_with_params()
        except (EmptyResultSet, FullResultSet):
            return queryset  # a filter that matches nothing (or everything) is a fine filter
        except (OverflowError, ValueError) as exc:  # e.g. created_at__gte=0001-01-01T00:00:00+01:00
            raise IncorrectLookupParameters(exc) from exc
        for value in params:
            offset = value.utcoffset() if isinstance(value, datetime) else None
            if offset is not None and abs(offset) >= POSTGRESQL_MAX_OFFSET:
                raise IncorrectLookupParameters(f"UTC offset {offset} is beyond ±15:59.")
        return queryset


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


class WorkerFilter(admin.SimpleListFilter):
    """The worker process that runs or ran a job (``Job.worker``, as the dashboard names it): the
    choices are the workers of the running jobs (the small index of active jobs), and any worker
    given in the URL filters, so the dashboard's links work for a worker that has just stopped."""

    title = gettext_lazy("worker")
    parameter_name = "worker"

    def lookups(self, request, model_admin):
        running = Job.objects.filter(status=JobStatus.RUNNING).exclude(worker="")
        workers = set(running.values_list("worker", flat=True).distinct().order_by()[:MAX_WORKER_CHOICES])
        return [(worker, worker) for worker in sorted(workers)]

    def has_output(self):
        return True  # a worker that runs nothing now is still a filter the URL may name

    def queryset(self, request, queryset):
        return queryset.filter(worker=self.value()) if self.value() else queryset


class ConcurrencyKeyFilter(admin.SimpleListFilter):
    """Jobs with a concurrency key (``?concurrency_key=``, as the API's filter): the choices are the
    keys of active jobs (pending or running), and any key given in the URL filters."""

    title = gettext_lazy("concurrency key")
    parameter_name = "concurrency_key"

    def lookups(self, request, model_admin):
        active = Job.objects.filter(status__in=ACTIVE_STATUSES, concurrency_key__isnull=False)
        keys = set(active.values_list("concurrency_key", flat=True).distinct().order_by()[:MAX_WORKER_CHOICES])
        return [(key, key) for key in sorted(keys)]

    def queryset(self, request, queryset):
        return queryset.filter(concurrency_key=self.value()) if self.value() else queryset


class ArgumentFilter(admin.ListFilter):
    """Search by arguments, as ``GET /api/v1/jobs/``: ``kwarg=key:value`` (repeatable), ``arg``,
    ``kwargs_contains`` and ``args_contains`` (JSON), cleaned by the API filter's own fields."""

    title = gettext_lazy("arguments")
    template = "admin/jobs/argument_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.raw = {name: params.pop(name) for name in ARGUMENT_FILTERS if name in params}
        self.other_params = [
            (name, value) for name, values in request.GET.lists() if name not in ARGUMENT_FILTERS for value in values
        ]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(ARGUMENT_FILTERS)

    def terms_in_words(self) -> str:
        """The search as typed: ``kwarg=user_id:42, kwargs_contains={...}`` (the "all matching" page)."""
        return ", ".join(f"{name}={value}" for name, values in self.raw.items() for value in values)

    def choices(self, changelist):
        yield {
            "kwarg": self.raw.get("kwarg", [""])[-1],
            "kwargs_contains": self.raw.get("kwargs_contains", [""])[-1],
            "other_params": self.other_params,
            "active": bool(self.raw),
        }

    def queryset(self, request, queryset):
        if not self.raw:
            return queryset
        terms = {}
        for name, values in self.raw.items():
            field = JobFilter.base_filters[name].field
            try:
                terms[name] = field.clean(values if name in ("kwarg", "arg") else values[-1])
            except forms.ValidationError as exc:
                messages.error(request, f"Argument search, {name}: {' '.join(exc.messages)}")
                return queryset.none()
        return filter_by_arguments(queryset, **{name: value for name, value in terms.items() if value})
