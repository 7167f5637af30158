"""The stats' per-minute rollup: the figures equal a direct computation over the job rows, a row
re-read in the metrics pass' overlap window is counted once, the first pass builds the rollup from
the rows, other users' jobs stay out, and old minutes are pruned by the maintenance pass."""

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs.models import (
    STATS_RUN_BOUNDS,
    STATS_RUN_FIELDS,
    TERMINAL_STATUSES,
    Job,
    JobEvent,
    JobEventKind,
    JobStatsMinute,
    MetricCursor,
)
from jobs.observability.stats import histogram_quantile
from jobs.services.metrics import LATE, metrics_advance
from jobs.services.stats_rollup import minute_of
from jobs.tasks.maintenance_tasks import rollup_metrics
from jobs.tests.factories import LONG_RUNNING_TASK, make

pytestmark = pytest.mark.django_db

DATA = "jobs.tasks.common_tasks.process_data"
OUTCOMES = [str(status) for status in TERMINAL_STATUSES]


def finished(owner, status: str, *, ago: timedelta, run: float | None = 1.0, task=LONG_RUNNING_TASK, queue="default"):
    """A job that finished ``ago`` after running ``run`` seconds (None: cancelled before it started)."""
    end = timezone.now() - ago
    started = None if run is None else end - timedelta(seconds=run)
    return make(
        status,
        owner=owner,
        celery_task_name=task,
        queue=queue,
        priority="low" if queue == "low_priority" else "normal",
        created_at=end - timedelta(seconds=(run or 0) + 2),
        started_at=started,
        finished_at=end,
    )


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def direct(stats: dict, jobs) -> dict:
    """The stats' finished figures computed straight from the job rows, for the response's now."""
    now_minute = minute_of(when(stats["generated_at"]))
    day_from, hour_from = now_minute - timedelta(minutes=1439), now_minute - timedelta(minutes=59)
    series = {now_minute - timedelta(minutes=60 - i): dict.fromkeys(OUTCOMES, 0) for i in range(61)}
    day, hour = dict.fromkeys(OUTCOMES, 0), dict.fromkeys(OUTCOMES, 0)
    per_queue: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(STATS_RUN_BOUNDS))
    runs: dict[str, list[float]] = defaultdict(list)
    for job in jobs.filter(status__in=TERMINAL_STATUSES):
        minute = minute_of(job.finished_at)
        if minute in series:
            series[minute][job.status] += 1
        if not day_from <= minute <= now_minute:
            continue
        day[job.status] += 1
        per_queue[job.queue][job.status] += 1
        if minute >= hour_from:
            hour[job.status] += 1
        if job.started_at is not None:
            run = (job.finished_at - job.started_at).total_seconds()
            buckets[job.celery_task_name][next(i for i, b in enumerate(STATS_RUN_BOUNDS) if run <= b)] += 1
            runs[job.celery_task_name].append(run)
    ranges = {task: {"shortest": min(seconds), "longest": max(seconds)} for task, seconds in runs.items()}
    return {
        "day": day,
        "hour": hour,
        "per_queue": dict(per_queue),
        "series": [{"minute": minute, **counts} for minute, counts in series.items()],
        "slowest": sorted(
            (
                {
                    "task": task,
                    "runs": sum(counts),
                    "p50_seconds": round(histogram_quantile(0.5, counts, **ranges[task]), 3),
                    "p95_seconds": round(histogram_quantile(0.95, counts, **ranges[task]), 3),
                }
                for task, counts in buckets.items()
            ),
            key=lambda row: (-row["p95_seconds"], row["task"]),
        ),
    }


def assert_matches_rows(stats: dict, jobs) -> None:
    expected = direct(stats, jobs)
    assert {o: stats["last_day"][o] for o in OUTCOMES} == expected["day"]
    assert {o: stats["last_hour"][o] for o in OUTCOMES} == expected["hour"]
    assert stats["last_day"]["finished"] == sum(expected["day"].values())
    for queue in stats["queues"]:
        assert {o: queue[o] for o in OUTCOMES} == expected["per_queue"].get(queue["queue"], dict.fromkeys(OUTCOMES, 0))
    assert [{**m, "minute": when(m["minute"])} for m in stats["finished_per_minute"]] == expected["series"]
    assert stats["slowest_tasks"] == expected["slowest"]


def test_histogram_quantile_interpolates_inside_the_bucket_as_prometheus_does():
    counts = [0] * len(STATS_RUN_BOUNDS)
    counts[STATS_RUN_BOUNDS.index(2.5)] = 10  # ten runs in (1, 2.5]
    assert histogram_quantile(0.5, counts) == pytest.approx(1 + 1.5 * 5 / 10)
    counts[0] = 10  # and ten in (0, 0.01]
    assert histogram_quantile(0.25, counts) == pytest.approx(0.005)
    assert histogram_quantile(0.95, counts) == pytest.approx(1 + 1.5 * 9 / 10)
    only_long = [0] * (len(STATS_RUN_BOUNDS) - 1) + [3]  # past the last bound: the highest finite bound
    assert histogram_quantile(0.5, only_long) == STATS_RUN_BOUNDS[-2]
    assert histogram_quantile(0.5, [0] * len(STATS_RUN_BOUNDS)) is None


def test_stats_equal_a_direct_computation_over_the_rows(
    user, other_user, user_client, other_client, staff_viewer, staff_client
):
    minutes = timedelta(minutes=1)
    # Before any pass: the first stats request builds the rollup from these rows.
    runs = (0.003, 0.07, 0.7, 3, 40, 200, 5000, 30000)
    ages = (
        timedelta(seconds=1),
        timedelta(seconds=40),
        3 * minutes,
        12 * minutes,
        59 * minutes,
        61 * minutes,
        timedelta(hours=5),
        timedelta(hours=23, minutes=50),
        timedelta(hours=24, minutes=30),  # in the rollup's margin, not in the day the stats show
        timedelta(days=3),
    )
    for index, ago in enumerate(ages):
        status = OUTCOMES[index % 3]
        run = None if status == "revoked" and index % 2 else runs[index % len(runs)]
        finished(user, status, ago=ago, run=run, task=(LONG_RUNNING_TASK, DATA)[index % 2])
        finished(
            other_user, OUTCOMES[(index + 1) % 3], ago=ago, run=runs[(index + 3) % len(runs)], queue="low_priority"
        )
    make(owner=user)  # pending and running jobs are no finished figures
    make("running", owner=other_user)
    assert_matches_rows(user_client.get("/api/v1/stats/").json(), Job.objects.filter(owner=user))

    # Then jobs finish while the stats are polled, some stamped behind the watermark by a slow clock.
    for index, ago in enumerate((timedelta(0), timedelta(seconds=20), 2 * minutes, 4 * minutes)):
        finished(user, OUTCOMES[index % 3], ago=ago, run=runs[index], task=DATA)
        finished(other_user, "failed", ago=ago, run=runs[-index - 1], task=DATA, queue="low_priority")

    stats = staff_client.get("/api/v1/stats/").json()
    assert stats["scope"] == "all"
    assert_matches_rows(stats, Job.objects.all())
    own = user_client.get("/api/v1/stats/").json()
    assert own["scope"] == "own"
    assert_matches_rows(own, Job.objects.filter(owner=user))
    assert_matches_rows(other_client.get("/api/v1/stats/").json(), Job.objects.filter(owner=other_user))
    assert_matches_rows(
        user_client.get("/api/v1/stats/", {"task": DATA}).json(), Job.objects.filter(owner=user, celery_task_name=DATA)
    )
    assert_matches_rows(
        staff_client.get("/api/v1/stats/", {"queue": "low_priority"}).json(), Job.objects.filter(queue="low_priority")
    )
    # Nothing of the other user's reaches the user's figures, and the reverse.
    assert own["last_day"]["finished"] == 12 and stats["last_day"]["finished"] == 24


def day_outcomes(client) -> dict[str, int]:
    stats = client.get("/api/v1/stats/").json()
    return {o: stats["last_day"][o] for o in OUTCOMES}


def test_a_row_re_read_in_the_overlap_window_is_counted_once(user, user_client):
    finished(user, "succeeded", ago=timedelta(seconds=1))
    assert day_outcomes(user_client) == {"succeeded": 1, "failed": 0, "revoked": 0, "expired": 0}
    # A worker whose clock runs two minutes behind: its row lands behind the watermark, inside the
    # window that every pass re-reads. It is counted by the next request, once.
    finished(user, "failed", ago=timedelta(minutes=2), run=30)
    for _ in range(3):
        assert day_outcomes(user_client) == {"succeeded": 1, "failed": 1, "revoked": 0, "expired": 0}
    assert metrics_advance(until_done=True) == {"jobs": 0, "retries": 0}  # beat's pass re-reads it too
    assert day_outcomes(user_client) == {"succeeded": 1, "failed": 1, "revoked": 0, "expired": 0}
    rows = JobStatsMinute.objects.all()
    assert sum(row.succeeded + row.failed for row in rows) == 2
    assert sum(row.run_le_1 + row.run_le_30 for row in rows) == 2  # one run each in their buckets


def test_a_job_finished_a_second_ago_shows_in_the_next_request(user, user_client):
    assert day_outcomes(user_client)["succeeded"] == 0
    finished(user, "succeeded", ago=timedelta(seconds=1))
    stats = user_client.get("/api/v1/stats/").json()
    # A second ago may be the minute before when the request lands in a minute's first second.
    latest = sum(minute["succeeded"] for minute in stats["finished_per_minute"][-2:])
    assert stats["last_hour"]["succeeded"] == 1 and latest == 1


def test_the_first_pass_after_deployment_builds_the_rollup_from_the_rows_counted_so_far(
    user, staff_viewer, staff_client
):
    """A system where /metrics ran before the rollup existed: its cursor stands at a watermark, with
    rows counted in the window behind it. The build counts those and the older ones, the pass the rest."""
    finished(user, "succeeded", ago=timedelta(hours=5))  # behind the first watermark
    # Ran once, retried by an operator, cancelled before its second round started: no run this round.
    retried = finished(user, "revoked", ago=timedelta(hours=2))
    JobEvent.objects.create(job=retried, kind=JobEventKind.RETRIED, at=retried.finished_at - timedelta(seconds=0.5))
    finished(user, "failed", ago=timedelta(minutes=1))  # counted by that pass, remembered in MetricSeen
    assert metrics_advance() == {"jobs": 1, "retries": 0}
    JobStatsMinute.objects.all().delete()  # as before the rollup's migration
    MetricCursor.objects.filter(source="jobs").update(stats_since=None)
    finished(user, "revoked", ago=timedelta(seconds=30), run=None)  # finished after that pass
    # Too far behind the watermark for any pass (as in /metrics), but of the day: the build counts it.
    finished(user, "revoked", ago=LATE + timedelta(minutes=2))

    assert day_outcomes(staff_client) == {"succeeded": 1, "failed": 1, "revoked": 3, "expired": 0}
    assert day_outcomes(staff_client) == {"succeeded": 1, "failed": 1, "revoked": 3, "expired": 0}
    runs = [
        field for field in STATS_RUN_FIELDS for row in JobStatsMinute.objects.all() for _ in range(getattr(row, field))
    ]
    assert runs == ["run_le_1"] * 3  # as the pass counts runs: not the retried job's earlier round
    cursor = MetricCursor.objects.get(source="jobs")
    assert cursor.stats_since is not None and cursor.stats_since < timezone.now() - timedelta(days=1)


def test_the_maintenance_pass_prunes_minutes_older_than_a_day_and_a_margin(user, user_client):
    now = timezone.now()
    for ago in (timedelta(hours=26), timedelta(hours=24, minutes=30), timedelta(minutes=5)):
        JobStatsMinute.objects.create(
            minute=minute_of(now - ago), owner=user, queue="default", task=LONG_RUNNING_TASK, succeeded=1, run_le_1=1
        )
    MetricCursor.objects.create(source="jobs", watermark=now, stats_since=now - timedelta(days=2))  # built
    assert rollup_metrics()["stats_minutes_pruned"] == 1
    assert JobStatsMinute.objects.count() == 2
    # The one in the margin is kept, but the stats show a day only.
    assert day_outcomes(user_client) == {"succeeded": 1, "failed": 0, "revoked": 0, "expired": 0}
