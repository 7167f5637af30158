"""The slowest tasks' percentiles stay inside the runs they describe: the rollup keeps each row's
shortest and longest run, and the interpolated quantiles are clamped to them (with one run, p50 =
p95 = that run), both when the passes add the jobs and when the first pass builds the rollup."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobStatsMinute, MetricCursor
from jobs.services.metrics import metrics_advance
from jobs.tests.factories import LONG_RUNNING_TASK, make

pytestmark = pytest.mark.django_db


def finished(owner, *, run: float, ago: timedelta = timedelta(seconds=1)):
    end = timezone.now() - ago
    return make(
        "succeeded",
        owner=owner,
        celery_task_name=LONG_RUNNING_TASK,
        created_at=end - timedelta(seconds=run + 1),
        started_at=end - timedelta(seconds=run),
        finished_at=end,
    )


def slowest(client) -> dict:
    stats = client.get("/api/v1/stats/").json()
    return next(row for row in stats["slowest_tasks"] if row["task"] == LONG_RUNNING_TASK)


def test_one_run_of_30_seconds_is_its_own_p50_and_p95(user, user_client):
    metrics_advance(until_done=True)  # the rollup exists: the pass adds the job
    finished(user, run=30.0)
    row = slowest(user_client)
    assert (row["runs"], row["p50_seconds"], row["p95_seconds"]) == (1, 30.0, 30.0)
    stored = JobStatsMinute.objects.get()
    assert (stored.run_min, stored.run_max) == (timedelta(seconds=30), timedelta(seconds=30))


def test_few_runs_stay_between_the_shortest_and_the_longest(user, user_client):
    metrics_advance(until_done=True)
    finished(user, run=31.0, ago=timedelta(minutes=3))
    finished(user, run=33.0)
    row = slowest(user_client)
    assert row["runs"] == 2
    assert 31.0 <= row["p50_seconds"] <= row["p95_seconds"] <= 33.0


def test_the_first_pass_builds_the_shortest_and_longest_runs_from_the_rows(user, user_client):
    finished(user, run=30.0, ago=timedelta(minutes=10))
    finished(user, run=40.0, ago=timedelta(minutes=10))
    make("revoked", owner=user, celery_task_name=LONG_RUNNING_TASK)  # never ran: no run time
    MetricCursor.objects.all().delete()
    row = slowest(user_client)  # the request's pass builds the rollup from the rows
    assert row["runs"] == 2
    assert 30.0 <= row["p50_seconds"] <= row["p95_seconds"] <= 40.0
    stored = JobStatsMinute.objects.filter(succeeded__gt=0).get()
    assert (stored.run_min, stored.run_max) == (timedelta(seconds=30), timedelta(seconds=40))
