"""No starvation (jobs.services.promotion): a job that waited too long on a lower queue is sent again
to high_priority, once, and whichever of its two messages comes first starts it."""

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from jobs.models import RETRY_EVENT_KINDS, Job, JobEvent, JobEventKind, JobStatus
from jobs.queues.services import queue_pause
from jobs.services.execution import job_start, job_succeed
from jobs.services.metrics import metrics_advance
from jobs.services.promotion import job_promote_waiting, promotion_margin
from jobs.tests.factories import kinds, make

pytestmark = pytest.mark.django_db

DEFAULT_MAX_WAIT = 600.0  # "10m": what README and .env.example say
ROOT = Path(__file__).resolve().parents[3]


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def waiting(priority: str = "low", *, seconds: float, **fields) -> Job:
    """A pending job of ``priority`` whose message went to its queue ``seconds`` ago."""
    return make(priority=priority, created_at=ago(seconds), dispatched_at=ago(seconds), **fields)


def test_the_default_bound_is_ten_minutes_as_documented():
    assert django_settings.JOB_PRIORITY_MAX_WAIT == DEFAULT_MAX_WAIT
    assert "JOB_PRIORITY_MAX_WAIT=10m" in (ROOT / ".env.example").read_text()
    assert "`JOB_PRIORITY_MAX_WAIT` (default `10m`;" in (ROOT / "README.md").read_text()
    # Promoted a minute before the bound (a tenth of it; three sweeps at least), by beat every sweep.
    assert promotion_margin(DEFAULT_MAX_WAIT) == 60
    beat = django_settings.CELERY_BEAT_SCHEDULE["taskhub-promote-jobs"]
    assert beat["task"] == "jobs.tasks.maintenance_tasks.promote_jobs"
    assert beat["schedule"] == django_settings.JOB_SWEEP_INTERVAL == 10


def test_a_job_waiting_past_the_bound_minus_the_margin_is_sent_to_high_priority(published):
    """Production defaults: 600 s, promoted after 540 s; normal jobs (default) as low ones."""
    low = waiting("low", seconds=545)
    normal = waiting("normal", seconds=545)
    young = waiting("low", seconds=530)
    high = waiting("high", seconds=3600)  # on high_priority already
    assert job_promote_waiting() == 2
    assert sorted((m["id"], m["routing_key"]) for m in published) == sorted(
        [(str(low.id), "high_priority"), (str(normal.id), "high_priority")]
    )
    line = JobEvent.objects.get(job_id=low.id)
    assert line.kind == JobEventKind.PROMOTED and line.actor_label == "sweeper"
    assert line.message.startswith("Promoted after waiting 545 s on low_priority: sent again to high_priority")
    assert line.data["from_queue"] == "low_priority" and line.data["max_wait"] == DEFAULT_MAX_WAIT
    # Nothing else about the job changed: its queue, priority, attempts, when it was sent.
    row = Job.objects.get(id=low.id)
    assert (row.status, row.queue, row.priority, row.attempts) == ("pending", "low_priority", "low", 0)
    assert row.dispatched_at == low.dispatched_at
    assert kinds(young) == kinds(high) == ["created"]


def test_a_job_is_promoted_once_per_message(published):
    job = waiting(seconds=700)
    assert job_promote_waiting() == 1
    assert job_promote_waiting() == 0
    assert len(published) == 1
    # Sent again later (a lost message, a deferral ended): its new message may be promoted in turn.
    JobEvent.objects.filter(job_id=job.id).update(at=ago(800))  # promoted before its message was sent
    assert job_promote_waiting() == 1
    assert kinds(job) == ["promoted", "created", "promoted"]  # the first moved back in time


def test_jobs_held_by_their_own_rules_are_left_alone(published):
    """Unsent (a paused queue holds it, a rate limit or a fair share deferred it), due later, on a paused
    queue, not pending any more, or of a task no longer registered: not promoted."""
    left = [
        make(priority="low", created_at=ago(900), dispatched_at=None),
        waiting(seconds=900, run_at=ago(30)),  # its countdown ended 30 s ago: waiting since then
        waiting(seconds=900, run_at=timezone.now() + timedelta(hours=1)),
        make("running", priority="low", created_at=ago(900), dispatched_at=ago(900)),
        waiting(seconds=900, celery_task_name="gone.task"),
    ]
    paused = waiting("normal", seconds=900)
    queue_pause(queue="default", by=None, source="command", reason="maintenance")
    assert job_promote_waiting() == 0
    assert published == []
    assert all(kinds(job) == ["created", "started"][: 2 if job.started_at else 1] for job in [*left, paused])


def test_off_when_the_bound_is_zero(settings, published):
    settings.JOB_PRIORITY_MAX_WAIT = 0
    waiting(seconds=3600)
    assert job_promote_waiting() == 0 and published == []


def test_the_promoted_job_starts_once_and_is_not_a_retry(published):
    """Whichever delivery comes first starts it (same task id, same attempt); the other one, early or
    late, finds it no longer pending and is dropped. No retry is counted."""
    job = waiting(seconds=600)
    job_promote_waiting()
    started = job_start(job_id=job.id, worker="w:1", attempts=0)  # the promoted message
    assert started is not None and started.attempts == 0
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # the stale one on low_priority
    job_succeed(job_id=job.id, attempts=0, result={"ok": True}, worker="w:1")
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None  # later still: after it finished
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.worker) == (JobStatus.SUCCEEDED, 0, "w:1")
    assert kinds(job) == ["created", "promoted", "started", "succeeded"]
    assert JobEventKind.PROMOTED not in RETRY_EVENT_KINDS  # metrics count retries by these kinds
    assert metrics_advance(until_done=True)["retries"] == 0


def test_a_job_started_by_its_own_message_ignores_the_promoted_one(published):
    job = waiting(seconds=600)
    job_promote_waiting()
    assert job_start(job_id=job.id, worker="w:1", attempts=0) is not None
    assert job_start(job_id=job.id, worker="w:2", attempts=0) is None
    assert Job.objects.get(id=job.id).worker == "w:1"


def load_job_settings(monkeypatch, **environ: str):
    """taskhub/settings/jobs.py run afresh with ``environ`` (the real settings are left alone)."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("job_settings_under_test", ROOT / "taskhub/settings/jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("raw", "seconds"), [("10m", 600.0), ("600", 600.0), ("90.5", 90.5), ("1h30m", 5400.0), ("0", 0.0), ("60s", 60.0)]
)
def test_the_setting_takes_seconds_or_a_duration(monkeypatch, raw, seconds):
    assert load_job_settings(monkeypatch, JOB_PRIORITY_MAX_WAIT=raw).JOB_PRIORITY_MAX_WAIT == seconds


@pytest.mark.parametrize(
    ("raw", "sweep", "error"),
    [
        ("ten minutes", "10", "must be a number of seconds or a duration"),
        ("-5", "10", "must be a number of seconds or a duration"),
        ("", "10", "must be a number of seconds or a duration"),
        ("59", "10", "at least six sweep intervals"),
        ("5", "1", "at least six sweep intervals"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_it(monkeypatch, raw, sweep, error):
    with pytest.raises(ImproperlyConfigured, match=f"JOB_PRIORITY_MAX_WAIT.*{error}"):
        load_job_settings(monkeypatch, JOB_PRIORITY_MAX_WAIT=raw, JOB_SWEEP_INTERVAL=sweep)
