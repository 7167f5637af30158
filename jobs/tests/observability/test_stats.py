"""GET /api/v1/stats/: the caller's visible jobs only (staff: all), the figures, bad input as a 400."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import assert_error
from jobs.models import WorkerHeartbeat
from jobs.tests.factories import LONG_RUNNING_TASK, make

pytestmark = pytest.mark.django_db

DATA = "jobs.tasks.common_tasks.process_data"


def finished(owner, status: str, *, task: str = LONG_RUNNING_TASK, run: float = 1.0, ago: timedelta = timedelta(0)):
    end = timezone.now() - ago
    return make(
        status,
        owner=owner,
        celery_task_name=task,
        created_at=end - timedelta(seconds=run + 1),
        started_at=end - timedelta(seconds=run),
        finished_at=end,
    )


@pytest.fixture
def mix(user, other_user):
    """user: 2 pending, 1 running, 3 succeeded and 1 failed in the last hour, 1 succeeded 3 hours
    ago, 1 failed 2 days ago. other_user: 5 pending, 4 failed now."""
    make(owner=user, created_at=timezone.now() - timedelta(seconds=40))
    make(owner=user, priority="low")
    make("running", owner=user)
    for run in (1, 2, 10):
        finished(user, "succeeded", run=run)
    finished(user, "failed", task=DATA, run=0.5)
    finished(user, "succeeded", ago=timedelta(hours=3))
    finished(user, "failed", ago=timedelta(days=2))
    for _ in range(5):
        make(owner=other_user)
    for _ in range(4):
        finished(other_user, "failed", task=DATA, run=100)


def queue(stats, name):
    return next(q for q in stats["queues"] if q["queue"] == name)


def test_a_user_who_is_not_staff_sees_only_their_own_jobs(user_client, mix):
    response = user_client.get("/api/v1/stats/")
    assert response.status_code == 200, response.content
    stats = response.json()
    assert stats["scope"] == "own"
    assert queue(stats, "default") == {
        "queue": "default",
        "pending": 1,
        "running": 1,
        "succeeded": 4,
        "failed": 1,
        "revoked": 0,
        "expired": 0,
        "oldest_pending_seconds": pytest.approx(40, abs=5),
    }
    assert queue(stats, "low_priority")["pending"] == 1
    assert stats["last_hour"] == {
        "finished": 4,
        "succeeded": 3,
        "failed": 1,
        "revoked": 0,
        "expired": 0,
        "per_minute": pytest.approx(4 / 60, abs=0.001),
        "failure_rate": 0.25,
    }
    assert stats["last_day"]["finished"] == 5 and stats["last_day"]["failure_rate"] == 0.2
    minutes = stats["finished_per_minute"]
    assert len(minutes) == 61
    assert sum(m["succeeded"] for m in minutes) == 3 and sum(m["failed"] for m in minutes) == 1
    assert minutes == sorted(minutes, key=lambda m: m["minute"])
    slowest = {t["task"]: t for t in stats["slowest_tasks"]}
    assert set(slowest) == {LONG_RUNNING_TASK, DATA}  # not the other user's 100 s runs
    assert slowest[LONG_RUNNING_TASK]["runs"] == 4
    # From the run-time buckets (runs 1, 1, 2, 10 s): the median's rank (2 of 4) is in (0.5, 1].
    assert 0.5 < slowest[LONG_RUNNING_TASK]["p50_seconds"] <= 1
    assert 0.25 < slowest[DATA]["p95_seconds"] <= 0.5  # one run of 0.5 s: its bucket (0.25, 0.5]
    assert stats["workers"] is None  # infrastructure: staff only


def test_staff_see_everyone_s_jobs_and_the_workers(staff_viewer, staff_client, mix):
    WorkerHeartbeat.objects.create(
        hostname="w1@host", pid=7, queues=["default"], started_at=timezone.now(), last_seen=timezone.now()
    )
    stats = staff_client.get("/api/v1/stats/").json()
    assert stats["scope"] == "all"
    assert queue(stats, "default")["pending"] == 6
    assert stats["last_hour"]["failed"] == 5
    assert stats["slowest_tasks"][0]["task"] == DATA
    assert 60 < stats["slowest_tasks"][0]["p95_seconds"] <= 120  # four runs of 100 s: the bucket (60, 120]
    assert [w["worker"] for w in stats["workers"]] == ["w1@host:7"]


def test_staff_without_the_view_permission_see_their_own_jobs_only(staff_client, mix):
    stats = staff_client.get("/api/v1/stats/").json()
    assert stats["scope"] == "own"
    assert queue(stats, "default")["pending"] == 0
    assert stats["last_hour"]["failed"] == 0


def test_filters_by_queue_and_task(user_client, mix):
    stats = user_client.get("/api/v1/stats/", {"queue": "low_priority", "slowest": 1}).json()
    assert [q["queue"] for q in stats["queues"]] == ["low_priority"]
    assert stats["last_hour"]["finished"] == 0 and stats["slowest_tasks"] == []
    stats = user_client.get("/api/v1/stats/", {"task": "process_data"}).json()  # an alias
    assert stats["last_hour"] == {**stats["last_hour"], "finished": 1, "failed": 1}
    assert len(user_client.get("/api/v1/stats/", {"slowest": 1}).json()["slowest_tasks"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"queue": "nope"}, "queue"),
        ({"task": "no.such.task"}, "task"),
        ({"slowest": "-1"}, "slowest"),
        ({"slowest": "0"}, "slowest"),
        ({"slowest": "51"}, "slowest"),
        ({"slowest": "many"}, "slowest"),
        ({"window": "1h"}, "window"),
        ({"task": ""}, "task"),
        ({"queue": ""}, "queue"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(user_client, query, field):
    body = assert_error(user_client.get("/api/v1/stats/", query), 400, "invalid", field=field)
    assert body["message"].startswith(f"{field}: ")


def test_stats_need_a_login(api_client):
    assert_error(api_client.get("/api/v1/stats/"), 401, "not_authenticated")
