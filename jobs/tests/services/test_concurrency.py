"""Concurrency keys at the service level (jobs/services/concurrency.py): the claim in the start's
transaction, the wait (one timeline line, not failed, not a retry), the release of the next waiting
job when a job of the key leaves running (priority, then creation), the sweep's safety net and the
catalog's default rule. The real-worker tests are jobs/tests/tasks/test_concurrency_workers.py."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from jobs.catalog import Concurrency, catalog
from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.services.recovery import job_dispatch_due, job_recover_stale
from jobs.tests.factories import LONG_RUNNING_TASK, make
from jobs.tests.test_catalog import register  # noqa: F401 - the fixture
from taskhub.errors import InvalidInput

pytestmark = pytest.mark.django_db


def keyed(owner, key="tenant-7", limit=1, **fields) -> Job:
    return make(owner=owner, concurrency_key=key, concurrency_limit=limit, **fields)


def lines(job, kind=JobEventKind.CONCURRENCY) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job_id=job.id, kind=kind))


def test_a_job_over_its_keys_limit_waits_unsent_with_one_line_and_another_key_runs_beside(staff_user):
    first, second = keyed(staff_user), keyed(staff_user, dispatched_at=timezone.now())
    assert job_start(job_id=first.id, worker="w:1") is not None
    assert job_start(job_id=second.id, worker="w:2") is None

    waiting = Job.objects.get(id=second.id)
    assert waiting.status == JobStatus.PENDING and waiting.dispatched_at is None
    assert waiting.concurrency_waiting_since is not None
    assert waiting.attempts == 0 and waiting.run_at is None  # not a retry, not deferred by a time
    [line] = lines(second)
    assert line.message == "Waiting: concurrency key tenant-7 at its limit 1."
    assert line.data == {"key": "tenant-7", "limit": 1, "running": 1}
    # Another key, and a job without a key, start beside it.
    assert job_start(job_id=keyed(staff_user, key="tenant-8").id, worker="w:3") is not None
    assert job_start(job_id=make(owner=staff_user).id, worker="w:4") is not None

    # Refused again (a duplicate message, the sweep): still one line, still waiting since the first time.
    Job.objects.filter(id=second.id).update(dispatched_at=timezone.now())
    assert job_start(job_id=second.id, worker="w:2") is None
    assert len(lines(second)) == 1
    assert Job.objects.get(id=second.id).concurrency_waiting_since == waiting.concurrency_waiting_since


def test_limit_3_runs_three_and_the_fourth_waits(staff_user):
    jobs = [keyed(staff_user, limit=3) for _ in range(4)]
    assert [job_start(job_id=job.id, worker="w") is not None for job in jobs] == [True, True, True, False]


def test_the_start_clears_the_wait(staff_user):
    running, waiting = keyed(staff_user), keyed(staff_user)
    job_start(job_id=running.id, worker="w:1")
    job_start(job_id=waiting.id, worker="w:2")
    Job.objects.filter(id=running.id).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    started = job_start(job_id=waiting.id, worker="w:2")
    assert started is not None and Job.objects.get(id=waiting.id).concurrency_waiting_since is None


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "retried"])
def test_a_job_leaving_running_sends_the_next_waiting_job_of_its_key_after_commit(
    staff_user, published, django_capture_on_commit_callbacks, outcome
):
    running = keyed(staff_user, max_retries=1 if outcome == "retried" else 0)
    waiting = keyed(staff_user)
    other = keyed(staff_user, key="tenant-8")  # waits for its own key: not released by tenant-7
    started = job_start(job_id=running.id, worker="w:1")
    job_start(job_id=waiting.id, worker="w:2")
    Job.objects.filter(id=other.id).update(concurrency_waiting_since=timezone.now())
    keyed(staff_user, key="tenant-8", status=JobStatus.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        if outcome == "succeeded":
            job_succeed(job_id=running.id, attempts=started.attempts, result=1, worker="w:1")
        else:
            job_fail(job_id=running.id, attempts=started.attempts, error="boom", worker="w:1")
    sent = [message["id"] for message in published]
    assert str(waiting.id) in sent and str(other.id) not in sent
    assert Job.objects.get(id=waiting.id).dispatched_at is not None
    assert job_start(job_id=waiting.id, worker="w:2") is not None


def test_waiting_jobs_are_released_by_priority_then_by_creation(staff_user, published):
    now = timezone.now()
    keyed(staff_user, status=JobStatus.RUNNING, limit=2)
    low = keyed(staff_user, limit=2, priority="low", queue="low_priority", created_at=now - timedelta(seconds=9))
    old = keyed(staff_user, limit=2, created_at=now - timedelta(seconds=8))
    new = keyed(staff_user, limit=2, created_at=now - timedelta(seconds=7))
    high = keyed(staff_user, limit=2, priority="high", queue="high_priority", created_at=now)
    Job.objects.filter(id__in=[low.id, old.id, new.id, high.id]).update(concurrency_waiting_since=now)

    from jobs.services.concurrency import job_release_waiting

    assert job_release_waiting(keys=["tenant-7"]) == 1  # one running of 2: room for one
    assert [m["id"] for m in published] == [str(high.id)]
    Job.objects.filter(id=high.id).update(status=JobStatus.RUNNING)
    Job.objects.filter(concurrency_key="tenant-7", status=JobStatus.RUNNING).exclude(id=high.id).update(
        status=JobStatus.SUCCEEDED
    )
    assert job_release_waiting(keys=["tenant-7"]) == 1
    assert [m["id"] for m in published][1:] == [str(old.id)]


def test_the_sweep_releases_a_key_with_room_and_leaves_a_full_one(staff_user, published):
    """The safety net: a release lost with a process that died after its commit."""
    now = timezone.now()
    free = keyed(staff_user, key="free", created_at=now - timedelta(minutes=5), concurrency_waiting_since=now)
    keyed(staff_user, key="full", status=JobStatus.RUNNING)
    full = keyed(staff_user, key="full", created_at=now - timedelta(minutes=5), concurrency_waiting_since=now)
    assert job_dispatch_due() == 1
    assert [m["id"] for m in published] == [str(free.id)]
    assert Job.objects.get(id=full.id).dispatched_at is None


def test_the_recovery_of_a_dead_workers_keyed_job_frees_its_key(
    staff_user, published, django_capture_on_commit_callbacks
):
    stale = timezone.now() - timedelta(minutes=10)
    dead = keyed(staff_user, status=JobStatus.RUNNING, heartbeat_at=stale, worker="gone:1")
    waiting = keyed(staff_user, concurrency_waiting_since=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert job_recover_stale() == ["failed"]
    assert [m["id"] for m in published] == [str(waiting.id)]
    assert Job.objects.get(id=dead.id).status == JobStatus.FAILED
    assert job_start(job_id=waiting.id, worker="w:2") is not None


def test_a_refused_job_whose_key_freed_meanwhile_is_sent_again_instead_of_waiting(
    staff_user, published, django_capture_on_commit_callbacks, monkeypatch
):
    """The lost wake-up: the running job finished (and its release looked) between the refusal's
    count and the mark. The mark counts again under the key's lock: the job goes at once."""
    from jobs.services import concurrency, waiting

    running, late = keyed(staff_user), keyed(staff_user)
    job_start(job_id=running.id, worker="w:1")
    real_room = concurrency.concurrency_room

    def finished_meanwhile(**kwargs):
        Job.objects.filter(id=running.id).update(status=JobStatus.SUCCEEDED)
        return real_room(**kwargs)

    monkeypatch.setattr(waiting, "concurrency_room", finished_meanwhile)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_start(job_id=late.id, worker="w:2") is None
    job = Job.objects.get(id=late.id)
    assert job.concurrency_waiting_since is None and lines(late) == []
    assert [m["id"] for m in published] == [str(late.id)]


@pytest.mark.django_db(transaction=True)
def test_racing_starts_of_one_key_cannot_both_take_the_last_place(staff_user, monkeypatch):
    """Four threads start four jobs of one key (limit 1), each of another owner (the start locks its
    owner's row), at the same moment: exactly one runs. Each start's transaction stays open 0.3 s
    after its count (what comes next in it, the fair share, is slowed), so without the key's lock
    all four would count only their own start."""
    from jobs.services import execution

    real_share = execution.check_running_share

    def slow_share(**kwargs):
        time.sleep(0.3)
        return real_share(**kwargs)

    monkeypatch.setattr(execution, "check_running_share", slow_share)
    owners = [User.objects.create_user(f"racer{i}", email=f"racer{i}@example.com", is_staff=True) for i in range(4)]
    jobs = [keyed(owner) for owner in owners]
    barrier = threading.Barrier(4)
    started: list[bool] = []

    def start(job) -> None:
        try:
            barrier.wait()
            started.append(job_start(job_id=job.id, worker="w") is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(started) == [False, False, False, True]
    assert Job.objects.filter(concurrency_key="tenant-7", status=JobStatus.RUNNING).count() == 1
    assert Job.objects.filter(concurrency_waiting_since__isnull=False).count() == 3


# --- the rule: a request's, or the task's default (a template over its arguments) ---


def test_a_request_names_its_key_and_limit(user):
    job = job_create(owner=user, celery_task_name=LONG_RUNNING_TASK, concurrency={"key": "k", "limit": 2})
    assert (job.concurrency_key, job.concurrency_limit) == ("k", 2)
    plain = job_create(owner=user, celery_task_name=LONG_RUNNING_TASK)
    assert (plain.concurrency_key, plain.concurrency_limit) == (None, None)


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"key": "", "limit": 1}, "concurrency.key"),
        ({"key": "   ", "limit": 1}, "concurrency.key"),
        ({"key": "k" * 256, "limit": 1}, "concurrency.key"),
        ({"key": 7, "limit": 1}, "concurrency.key"),
        ({"limit": 1}, "concurrency.key"),
        ({"key": "k", "limit": 0}, "concurrency.limit"),
        ({"key": "k", "limit": "2"}, "concurrency.limit"),
        ({"key": "k", "limit": 1.5}, "concurrency.limit"),
        ({"key": "k", "limit": True}, "concurrency.limit"),
        ({"key": "k"}, "concurrency.limit"),
        ({"key": "k", "limit": 1, "scope": "x"}, "concurrency.scope"),
        ("tenant-7", "concurrency"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field_and_nothing_is_written(user, rule, field):
    with pytest.raises(InvalidInput) as caught:
        job_create(owner=user, celery_task_name=LONG_RUNNING_TASK, concurrency=rule)
    assert list(caught.value.fields) == [field]
    assert not Job.objects.exists()


def test_the_tasks_default_rule_is_a_template_over_its_arguments(user, register):  # noqa: F811
    def per_tenant(self, tenant_id: int, rows: int = 0) -> None:
        """A task with a rule per tenant."""

    entry = register(per_tenant, concurrency={"key": "tenant-{tenant_id}", "limit": 2})
    assert entry.concurrency == Concurrency("tenant-{tenant_id}", 2)
    assert entry.describe()["concurrency"] == {"key": "tenant-{tenant_id}", "limit": 2}
    job = job_create(owner=user, celery_task_name=entry.name, kwargs={"tenant_id": 7})
    assert (job.concurrency_key, job.concurrency_limit) == ("tenant-7", 2)
    positional = job_create(owner=user, celery_task_name=entry.name, args=[8])
    assert positional.concurrency_key == "tenant-8"
    # A request's own rule replaces the default.
    own = job_create(owner=user, celery_task_name=entry.name, args=[8], concurrency={"key": "all", "limit": 1})
    assert (own.concurrency_key, own.concurrency_limit) == ("all", 1)


def test_a_template_naming_a_missing_argument_is_refused_naming_it(user, register):  # noqa: F811
    def labelled(self, **labels: str) -> None:
        """Labels only."""

    entry = register(labelled, concurrency={"key": "tenant-{tenant}", "limit": 1})
    assert job_create(owner=user, celery_task_name=entry.name, kwargs={"tenant": "a"}).concurrency_key == "tenant-a"
    with pytest.raises(InvalidInput) as caught:
        job_create(owner=user, celery_task_name=entry.name, kwargs={"other": "a"})
    assert list(caught.value.fields) == ["kwargs.tenant"]


@pytest.mark.parametrize(
    "rule",
    [
        {"key": "t-{tenant.__class__}", "limit": 1},
        {"key": "t-{tenant!r}", "limit": 1},
        {"key": "t-{0}", "limit": 1},
        {"key": "t", "limit": 0},
    ],
)
def test_a_bad_default_rule_fails_at_registration(register, rule):  # noqa: F811
    def task_with_bad_rule(self, tenant: str = "") -> None:
        """Bad rule."""

    with pytest.raises((ValueError, InvalidInput)):
        register(task_with_bad_rule, concurrency=rule)
    assert "jobs.tests.task_with_bad_rule" not in catalog


def test_the_release_passes_over_waiting_jobs_that_cannot_start_now(staff_user, published):
    """A waiting job deferred since (a rate limit, a fair share: run_at ahead) or on a paused queue
    takes none of the key's room: the next one goes."""
    from jobs.models import QueueControl
    from jobs.services.concurrency import job_release_waiting
    from jobs.services.gates import forget_limits

    now = timezone.now()
    later = keyed(staff_user, created_at=now - timedelta(seconds=3), run_at=now + timedelta(hours=1))
    paused = keyed(
        staff_user,
        priority="low",
        queue="low_priority",
        created_at=now - timedelta(seconds=2),
        concurrency_waiting_since=now,
    )
    ready = keyed(staff_user, created_at=now - timedelta(seconds=1), concurrency_waiting_since=now)
    Job.objects.filter(id=later.id).update(concurrency_waiting_since=now)
    QueueControl.objects.create(name="high_priority", paused=True)
    forget_limits()
    assert job_release_waiting(keys=["tenant-7"]) == 1
    assert [m["id"] for m in published] == [str(ready.id)]
    assert Job.objects.get(id=paused.id).dispatched_at is None
