"""What ``GET /metrics`` exposes, read from taskhub's own rows (no Celery events): a Prometheus
custom collector (https://prometheus.github.io/client_python/collector/custom/).

Cheap at 1,000,000 jobs: the gauges read active jobs only (a small partial index), running jobs
(another) and the worker heartbeats; counters and histograms read the rollup's totals
(``MetricTotal``, a few hundred rows), which ``jobs.services.metrics`` advances incrementally.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.db.models.functions import Now
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from taskhub.clock import database_now

from ..models import (
    ACTIVE,
    ACTIVE_STATUSES,
    METRIC_BUCKETS,
    PRIORITY_QUEUES,
    Job,
    JobStatus,
    MetricCursor,
    MetricTotal,
    WorkerHeartbeat,
    Workflow,
    WorkflowStatus,
)
from ..selectors import concurrency_waiting, due_pending, due_since, steps_waiting
from ..services.deduplicated import deduplicated_totals

PREFIX = "taskhub"


def known_queues() -> list[str]:
    return sorted(set(PRIORITY_QUEUES.values()))


def active_counts() -> list[dict]:
    """Pending and running jobs per status, queue and task (the ``job_pending`` and ``job_running`` indexes, each row's
    ``parents_remaining`` checked); not the workflow steps waiting for their parents
    (``taskhub_workflow_steps_waiting``): they cannot run."""
    return list(
        Job.objects.filter(ACTIVE, parents_remaining=0)
        .values("status", "queue", "celery_task_name")
        .annotate(count=Count("*"))
        .order_by()
    )


def oldest_pending_ages() -> dict[str, float]:
    """Per queue, seconds since the oldest due pending job became due (created, or its run_at)."""
    rows = (
        Job.objects.filter(due_pending())
        .values("queue")
        .annotate(since=Min(due_since()))
        .order_by()
        .values_list("queue", "since")
    )
    now = database_now()
    return {queue: max(0.0, (now - since).total_seconds()) for queue, since in rows}


def workers_alive() -> list[WorkerHeartbeat]:
    """Worker processes seen within ``JOB_STALE_AFTER`` (by the database's clock)."""
    alive_since = Now() - timedelta(seconds=settings.JOB_STALE_AFTER)
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=alive_since).order_by("hostname", "pid"))


def running_per_worker() -> dict[str, int]:
    """Running jobs per worker process (``Job.worker``: node name and pid)."""
    rows = Job.objects.filter(status=JobStatus.RUNNING).values("worker").annotate(count=Count("*")).order_by()
    return {row["worker"]: row["count"] for row in rows}


def _histograms(totals: list[MetricTotal], metric: str) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """Per task: cumulative buckets (every bound any task has, then +Inf) and the sum."""
    stored = {float(t.label) for t in totals if t.metric == f"{metric}_bucket" and t.label != "+Inf"}
    bounds = sorted(stored | set(METRIC_BUCKETS[metric]))
    per_task: dict[str, dict[str, float]] = defaultdict(dict)
    sums: dict[str, float] = defaultdict(float)
    for total in totals:
        if total.metric == f"{metric}_bucket":
            per_task[total.task][total.label] = per_task[total.task].get(total.label, 0.0) + total.value
        elif total.metric == f"{metric}_sum":
            sums[total.task] += total.value
    histograms = {}
    for task, counts in per_task.items():
        by_bound = defaultdict(float)
        for label, value in counts.items():
            by_bound[float("inf") if label == "+Inf" else float(label)] += value
        running, buckets = 0.0, []
        for bound in [*bounds, float("inf")]:
            running += by_bound.get(bound, 0.0)
            buckets.append((floatToGoString(bound), running))  # as Prometheus writes le: 5.0, +Inf
        histograms[task] = (buckets, sums[task])
    return histograms


class JobCollector(Collector):
    """Every figure of ``/metrics``, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs",
            "Active jobs now (pending, running) by status, queue and task.",
            labels=["status", "queue", "task"],
        )
        seen = set()
        for row in active_counts():
            jobs.add_metric([row["status"], row["queue"], row["celery_task_name"]], row["count"])
            seen.add((row["status"], row["queue"]))
        for status in ACTIVE_STATUSES:  # an empty queue shows 0, not nothing
            for queue in known_queues():
                if (status, queue) not in seen:
                    jobs.add_metric([str(status), queue, ""], 0)
        yield jobs

        workflows = GaugeMetricFamily(
            f"{PREFIX}_workflows", "Workflows kept (until retention deletes them) by status.", labels=["status"]
        )
        by_status = dict(Workflow.objects.values_list("status").annotate(count=Count("id")).order_by())
        for status in WorkflowStatus.values:
            workflows.add_metric([status], by_status.get(status, 0))
        yield workflows
        yield GaugeMetricFamily(
            f"{PREFIX}_workflow_steps_waiting",
            "Workflow steps waiting for their parents to succeed: pending but not runnable, so not in taskhub_jobs.",
            value=steps_waiting().count(),
        )

        oldest = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_pending_age_seconds",
            "Seconds since the oldest pending job that is due (no run_at, or past it) became due, per queue.",
            labels=["queue"],
        )
        ages = oldest_pending_ages()
        for queue in sorted(set(known_queues()) | set(ages)):
            oldest.add_metric([queue], ages.get(queue, 0.0))
        yield oldest
        yield GaugeMetricFamily(
            f"{PREFIX}_jobs_waiting_concurrency_key",
            "Pending jobs waiting for their concurrency key: it ran its limit of jobs when they tried to start.",
            value=concurrency_waiting().count(),
        )

        totals = list(MetricTotal.objects.all())
        finished = CounterMetricFamily(
            f"{PREFIX}_jobs_finished",
            "Jobs finished, by task, queue and final status.",
            labels=["task", "queue", "status"],
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_job_failures",
            "Jobs that ended failed, by task and exception class.",
            labels=["task", "exception"],
        )
        retries = CounterMetricFamily(
            f"{PREFIX}_job_retries",
            "Jobs sent round again, by task and kind (automatic, worker_lost, manual).",
            labels=["task", "kind"],
        )
        for total in totals:
            if total.metric == "finished":
                finished.add_metric([total.task, total.queue, total.status], total.value)
            elif total.metric == "failures":
                failures.add_metric([total.task, total.label], total.value)
            elif total.metric == "retries":
                retries.add_metric([total.task, total.label], total.value)
        yield finished
        yield failures
        yield retries
        deduplicated = CounterMetricFamily(
            f"{PREFIX}_jobs_deduplicated",
            "Creates answered with the job holding their unique key, by task and outcome (existing, replaced, "
            "debounced, follow_up_queued, throttled, cancelled_running: the new job cancelled the running holder).",
            labels=["task", "outcome"],
        )
        for (task, outcome), count in sorted(deduplicated_totals().items()):
            deduplicated.add_metric([task, outcome], count)
        yield deduplicated

        for metric, help_text in (
            ("wait_seconds", "Time from created or due (run_at, retry backoff) to started, per task."),
            ("run_seconds", "Time from started to finished, per task."),
        ):
            family = HistogramMetricFamily(f"{PREFIX}_job_{metric}", help_text, labels=["task"])
            for task, (buckets, total) in sorted(_histograms(totals, metric).items()):
                family.add_metric([task], buckets, total)
            yield family

        alive = workers_alive()
        running = running_per_worker()
        yield GaugeMetricFamily(
            f"{PREFIX}_workers_alive",
            "Worker processes that run jobs and were seen within JOB_STALE_AFTER.",
            value=len(alive),
        )
        per_worker = GaugeMetricFamily(
            f"{PREFIX}_worker_jobs_running",
            "Running jobs per worker process (node name:pid); processes not seen alive appear while their "
            "jobs stay running.",
            labels=["worker", "hostname"],
        )
        labels = {worker.label: worker.hostname for worker in alive}
        for label in sorted(set(labels) | set(running)):
            per_worker.add_metric([label, labels.get(label, label.rpartition(":")[0])], running.get(label, 0))
        yield per_worker

        watermark = GaugeMetricFamily(
            f"{PREFIX}_metrics_counted_until_timestamp_seconds",
            "How far the totals have counted each source of rows (Unix time).",
            labels=["source"],
        )
        for source, at in MetricCursor.objects.values_list("source", "watermark"):
            if at is not None:
                watermark.add_metric([source], at.timestamp())
        yield watermark
