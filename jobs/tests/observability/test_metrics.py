"""GET /metrics: values that match the rows after a known mix of jobs (read back with
prometheus_client's own parser), totals that never go back when rows are deleted, who may read it."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from conftest import assert_error
from jobs.models import Job, JobStatus, MetricSeen, WorkerHeartbeat
from jobs.services.execution import job_fail, job_succeed
from jobs.services.metrics import LATE, metrics_advance
from jobs.services.operations import job_retry
from jobs.tests.factories import LONG_RUNNING_TASK, make

pytestmark = pytest.mark.django_db

DATA = "jobs.tasks.common_tasks.process_data"
FLAKY = "jobs.tasks.common_tasks.flaky_task"


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition: (name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4"), response["Content-Type"]
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def staff_session(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def ran(status: str, task: str, *, wait: float, run: float, **fields) -> Job:
    """A job that waited ``wait`` seconds from creation and ran ``run`` seconds, finished just now."""
    now = timezone.now()
    started = now - timedelta(seconds=run)
    return make(
        status,
        celery_task_name=task,
        created_at=started - timedelta(seconds=wait),
        started_at=started,
        finished_at=now,
        **fields,
    )


def test_metrics_match_the_rows_after_a_known_mix_of_jobs(staff_session):
    now = timezone.now()
    make(created_at=now - timedelta(seconds=100), priority="urgent")  # due, high_priority, waiting 100 s
    make(created_at=now - timedelta(seconds=30))  # due, default
    make(created_at=now - timedelta(hours=2), run_at=now + timedelta(hours=1))  # not due: not the oldest
    make("running", worker="w1@host:11")
    make("running", worker="w1@host:11", celery_task_name=DATA)
    ran("succeeded", LONG_RUNNING_TASK, wait=0.2, run=3)
    ran("succeeded", LONG_RUNNING_TASK, wait=0.2, run=40)
    ran("succeeded", DATA, wait=4, run=0.03, priority="low")
    # A deliberate delay (run_at) is not a queue's wait: due 1 s before it started.
    started = now - timedelta(seconds=2)
    make(
        "succeeded",
        created_at=now - timedelta(seconds=600),
        run_at=started - timedelta(seconds=1),
        started_at=started,
        finished_at=now,
    )
    # Failures through the worker's service, with their exception classes.
    for error_type in ("ValueError", "ValueError", "KeyError"):
        job = make("running", celery_task_name=DATA)
        job_fail(job_id=job.id, attempts=0, error=f"{error_type}: x", error_type=error_type, auto_retry=False)
    # An automatic retry (pending again, backoff) and a job revoked before it ever started.
    retried = make("running", celery_task_name=FLAKY, priority="low", max_retries=3)
    assert job_fail(job_id=retried.id, attempts=0, error="RuntimeError: flaky", error_type="RuntimeError")
    make("revoked")

    samples = scrape(staff_session)

    assert value(samples, "taskhub_jobs", status="pending", queue="high_priority", task=LONG_RUNNING_TASK) == 1
    assert value(samples, "taskhub_jobs", status="pending", queue="default", task=LONG_RUNNING_TASK) == 2
    assert value(samples, "taskhub_jobs", status="pending", queue="low_priority", task=FLAKY) == 1
    assert value(samples, "taskhub_jobs", status="running", queue="default", task=LONG_RUNNING_TASK) == 1
    assert value(samples, "taskhub_jobs", status="running", queue="default", task=DATA) == 1
    oldest = "taskhub_queue_oldest_pending_age_seconds"
    assert value(samples, oldest, queue="high_priority") == pytest.approx(100, abs=5)
    assert value(samples, oldest, queue="default") == pytest.approx(30, abs=5)
    assert value(samples, oldest, queue="low_priority") == 0  # in its backoff

    finished = "taskhub_jobs_finished_total"
    assert value(samples, finished, task=LONG_RUNNING_TASK, queue="default", status="succeeded") == 3
    assert value(samples, finished, task=DATA, queue="low_priority", status="succeeded") == 1
    assert value(samples, finished, task=DATA, queue="default", status="failed") == 3
    assert value(samples, finished, task=LONG_RUNNING_TASK, queue="default", status="revoked") == 1
    assert sum(v for (name, _), v in samples.items() if name == finished) == 8
    assert value(samples, "taskhub_job_failures_total", task=DATA, exception="ValueError") == 2
    assert value(samples, "taskhub_job_failures_total", task=DATA, exception="KeyError") == 1
    assert value(samples, "taskhub_job_retries_total", task=FLAKY, kind="automatic") == 1

    run = "taskhub_job_run_seconds"
    assert value(samples, f"{run}_count", task=LONG_RUNNING_TASK) == 3
    assert value(samples, f"{run}_sum", task=LONG_RUNNING_TASK) == pytest.approx(45, abs=0.5)
    assert value(samples, f"{run}_bucket", task=LONG_RUNNING_TASK, le="2.5") == 1  # the 2 s run
    assert value(samples, f"{run}_bucket", task=LONG_RUNNING_TASK, le="5.0") == 2  # and the 3 s one
    assert value(samples, f"{run}_bucket", task=LONG_RUNNING_TASK, le="30.0") == 2
    assert value(samples, f"{run}_bucket", task=LONG_RUNNING_TASK, le="60.0") == 3
    assert value(samples, f"{run}_bucket", task=LONG_RUNNING_TASK, le="+Inf") == 3
    wait = "taskhub_job_wait_seconds"
    assert value(samples, f"{wait}_count", task=LONG_RUNNING_TASK) == 3  # the revoked one never started
    assert value(samples, f"{wait}_sum", task=LONG_RUNNING_TASK) == pytest.approx(1.4, abs=0.1)  # not 600 s
    assert value(samples, f"{wait}_bucket", task=LONG_RUNNING_TASK, le="1.0") == 3
    assert value(samples, f"{wait}_bucket", task=DATA, le="2.5") == 3  # the failures, started at once
    assert value(samples, f"{wait}_bucket", task=DATA, le="5.0") == 4  # and the one that waited 4 s

    assert value(samples, "taskhub_workers_alive") == 0
    assert value(samples, "taskhub_worker_jobs_running", worker="w1@host:11", hostname="w1@host") == 2

    # A second scrape counts nothing twice; a job that finishes meanwhile is counted once.
    ran("succeeded", LONG_RUNNING_TASK, wait=0.2, run=1)
    again = scrape(staff_session)
    assert value(again, finished, task=LONG_RUNNING_TASK, queue="default", status="succeeded") == 4
    assert value(again, "taskhub_job_failures_total", task=DATA, exception="ValueError") == 2


def test_a_job_retried_by_an_operator_counts_each_finish_and_waits_from_its_retry(staff_session):
    job = ran("failed", LONG_RUNNING_TASK, wait=1, run=1, error_type="OSError")
    metrics_advance()
    Job.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(hours=3))  # as if long ago
    job_retry(job_id=job.id, by=None)
    Job.objects.filter(id=job.id).update(status=JobStatus.RUNNING, started_at=timezone.now(), worker="w@h:1")
    job_succeed(job_id=job.id, attempts=1)

    samples = scrape(staff_session)
    finished = "taskhub_jobs_finished_total"
    assert value(samples, finished, task=LONG_RUNNING_TASK, queue="default", status="failed") == 1
    assert value(samples, finished, task=LONG_RUNNING_TASK, queue="default", status="succeeded") == 1
    assert value(samples, "taskhub_job_failures_total", task=LONG_RUNNING_TASK, exception="OSError") == 1
    assert value(samples, "taskhub_job_retries_total", task=LONG_RUNNING_TASK, kind="manual") == 1
    # The second round waited from the operator's retry, not from the creation three hours ago.
    assert value(samples, "taskhub_job_wait_seconds_count", task=LONG_RUNNING_TASK) == 2
    assert value(samples, "taskhub_job_wait_seconds_sum", task=LONG_RUNNING_TASK) < 5


def test_a_row_that_commits_late_behind_the_watermark_is_still_counted_once(staff_session):
    ran("succeeded", LONG_RUNNING_TASK, wait=0, run=1)
    assert metrics_advance() == {"jobs": 1, "retries": 0}
    # A worker whose clock is two minutes behind: its row lands behind the watermark.
    make("succeeded", finished_at=timezone.now() - timedelta(minutes=2))
    assert metrics_advance() == {"jobs": 1, "retries": 0}
    assert metrics_advance() == {"jobs": 0, "retries": 0}
    # Older than the window: left alone (documented), and the memory of counted rows stays small.
    make("succeeded", finished_at=timezone.now() - LATE - timedelta(minutes=1))
    assert metrics_advance() == {"jobs": 0, "retries": 0}
    assert MetricSeen.objects.filter(source="jobs").count() == 2
    samples = scrape(staff_session)
    finished = "taskhub_jobs_finished_total"
    assert value(samples, finished, task=LONG_RUNNING_TASK, queue="default", status="succeeded") == 2


def test_counters_do_not_go_backwards_after_cleanup_jobs_deletes_rows(staff_session):
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    for _ in range(3):
        make("succeeded", finished_at=two_minutes_ago, created_at=two_minutes_ago - timedelta(seconds=5))
    make("failed", finished_at=two_minutes_ago, created_at=two_minutes_ago, error_type="ValueError")
    before = scrape(staff_session)
    # Finished since the last scrape and deleted before the next one: the purge counts them first.
    for _ in range(2):
        make("succeeded", finished_at=two_minutes_ago, created_at=two_minutes_ago - timedelta(seconds=5))

    call_command("cleanup_jobs", "--older-than", "1m", stdout=io.StringIO())
    assert not Job.objects.exists()

    after = scrape(staff_session)
    finished = "taskhub_jobs_finished_total"
    assert value(before, finished, task=LONG_RUNNING_TASK, queue="default", status="succeeded") == 3
    assert value(after, finished, task=LONG_RUNNING_TASK, queue="default", status="succeeded") == 5
    assert value(after, "taskhub_job_failures_total", task=LONG_RUNNING_TASK, exception="ValueError") == 1
    assert value(after, "taskhub_job_run_seconds_count", task=LONG_RUNNING_TASK) == 6
    for key, figure in before.items():
        if key[0].endswith(("_total", "_count", "_sum", "_bucket")):
            assert after.get(key, 0) >= figure, key


def test_unauthenticated_metrics_are_refused(user):
    response = Client().get("/metrics")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_error(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything"), 401, "authentication_failed")
    client = Client()
    client.force_login(user)  # a session, but not staff
    assert_error(client.get("/metrics"), 403, "permission_denied")


def test_the_metrics_token_opens_metrics_to_a_scraper(settings, staff_session):
    settings.METRICS_TOKEN = "s3cret-token-for-prometheus"
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token-for-prometheus").status_code == 200
    assert_error(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token"), 401, "authentication_failed")
    assert_error(Client().get("/metrics", HTTP_AUTHORIZATION="Basic czNjcmV0"), 401, "authentication_failed")
    assert_error(Client().get("/metrics"), 401, "not_authenticated")
    assert staff_session.get("/metrics").status_code == 200  # a staff session still works
    assert_error(staff_session.post("/metrics"), 405, "method_not_allowed")


def test_workers_seen_alive_by_the_database_clock(staff_session, settings):
    WorkerHeartbeat.objects.create(
        hostname="w1@host", pid=11, queues=["default"], started_at=timezone.now(), last_seen=timezone.now()
    )
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER + 5)
    WorkerHeartbeat.objects.create(hostname="w2@host", pid=12, queues=[], started_at=stale, last_seen=stale)
    samples = scrape(staff_session)
    assert value(samples, "taskhub_workers_alive") == 1
    assert value(samples, "taskhub_worker_jobs_running", worker="w1@host:11", hostname="w1@host") == 0
    assert ("taskhub_worker_jobs_running", (("hostname", "w2@host"), ("worker", "w2@host:12"))) not in samples


def test_a_row_that_commits_late_during_beats_pass_is_counted_once_by_its_last_re_read(monkeypatch):
    """Beat's pass reads on from the watermark between its re-reads of the window: a row that
    lands behind the watermark meanwhile is counted by the re-read that ends the pass, once."""
    from jobs.models import MetricCursor
    from jobs.services import metrics

    now = timezone.now()
    MetricCursor.objects.create(source="jobs", watermark=now - timedelta(hours=1), stats_since=now)
    for seconds in range(30):
        make("succeeded", finished_at=now - timedelta(seconds=30 - seconds))
    advance, calls = metrics._advance, []

    def advance_then_a_late_row(source, run):
        done = advance(source, run)
        calls.append(run.rechecked)
        if source.name == "jobs" and len(calls) == 2:  # a worker whose clock is two minutes behind
            watermark = MetricCursor.objects.get(source="jobs").watermark
            make("succeeded", finished_at=watermark - timedelta(minutes=2))
        return done

    monkeypatch.setattr(metrics, "_advance", advance_then_a_late_row)
    assert metrics_advance(batch=5, until_done=True) == {"jobs": 31, "retries": 0}
    assert calls[0] and not calls[1] and calls[-2]  # re-read, read on, ..., the last re-read (then retries)
    assert metrics_advance(until_done=True) == {"jobs": 0, "retries": 0}
