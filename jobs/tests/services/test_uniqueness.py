"""Unique jobs (jobs.services.uniqueness, the door's create_unique): each policy's answer to a
duplicate, the release of keys by transitions, and the rules' checks. Both databases: this module
runs on PostgreSQL (the suite's) and the SQLite path is exercised by test_uniqueness_sqlite."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.services.operations import job_cancel, job_retry
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.errors import InvalidInput

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


def create(user, policy="reject", key="k", **rule):
    return job_create(
        owner=user,
        celery_task_name=LONG,
        args=[rule.pop("seconds", 1)],
        kwargs=rule.pop("kwargs", {}),
        unique={"key": key, "policy": policy, **rule},
    )


def start(job):
    return job_start(job_id=job.id, worker="w1")


def held(key="k"):
    return list(Job.objects.filter(unique_key=key, unique_held=True).values_list("id", flat=True))


# --- reject and the held states --------------------------------------------------------------------


def test_reject_returns_the_holder_counts_duplicates_and_keeps_one_timeline_line(user, other_user):
    first = create(user)
    assert first.dedupe_outcome is None
    for _ in range(3):
        again = create(user)
        assert (again.id, again.dedupe_outcome) == (first.id, "existing")
    row = Job.objects.get(id=first.id)
    assert (row.duplicates, row.unique_key, row.unique_policy, row.unique_held) == (3, "k", "reject", True)
    lines = JobEvent.objects.filter(job=first, kind="deduplicated")
    assert lines.count() == 1
    assert lines.get().message.startswith(f"deduplicated: request by user {user.username} at ")
    assert Job.objects.count() == 1
    # Another owner's key of the same name is another key.
    assert create(other_user).id != first.id


def test_reject_holds_the_key_while_running_and_the_finish_releases_it(user):
    first = create(user)
    started = start(first)
    assert create(user).id == first.id
    job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w1")
    assert held() == []
    second = create(user)
    assert second.id != first.id and second.dedupe_outcome is None


@pytest.mark.parametrize("finish", ["fail", "cancel_pending", "cancel_running"])
def test_every_ending_releases_the_key(user, finish):
    first = create(user)
    if finish == "fail":
        started = start(first)
        job_fail(job_id=first.id, attempts=started.attempts, worker="w1", error="x", error_type="E", traceback="")
    elif finish == "cancel_pending":
        job_cancel(job_id=first.id)
    else:
        start(first)
        job_cancel(job_id=first.id)  # the durable cancel: the job is on its way out
    assert held() == []
    assert create(user).id != first.id


def test_a_manual_retry_does_not_take_the_key_again(user):
    first = create(user)
    job_cancel(job_id=first.id)
    second = create(user)
    job_retry(job_id=first.id)
    assert held() == [second.id]


def test_reject_pending_releases_at_the_start(user):
    first = create(user, "reject_pending")
    assert create(user, "reject_pending").id == first.id
    start(first)
    second = create(user, "reject_pending")
    assert second.id != first.id and second.dedupe_outcome is None


# --- throttle -------------------------------------------------------------------------------------


def test_throttle_holds_in_any_state_for_the_period_then_a_new_create_takes_the_key_over(user):
    first = create(user, "throttle", period=60)
    started = start(first)
    job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w1")
    again = create(user, "throttle", period=60)
    assert (again.id, again.dedupe_outcome) == (first.id, "throttled")
    Job.objects.filter(id=first.id).update(created_at=F("created_at") - timedelta(seconds=61))
    second = create(user, "throttle", period=60)
    assert second.id != first.id and second.dedupe_outcome is None
    assert held() == [second.id]


# --- replace, debounce, keep_latest ----------------------------------------------------------------


def test_replace_gives_the_pending_holder_the_new_arguments_and_a_running_one_a_successor(user):
    first = create(user, "replace", seconds=1)
    again = create(user, "replace", seconds=7, kwargs={"tag": "b"})
    assert (again.id, again.dedupe_outcome) == (first.id, "replaced")
    assert Job.objects.values_list("args", "kwargs").get(id=first.id) == ([7], {"tag": "b"})
    start(first)
    second = create(user, "replace")
    assert second.id != first.id and second.dedupe_outcome is None


def test_debounce_moves_the_start_never_past_the_first_creation_plus_max_wait(user):
    first = create(user, "debounce", period=2, max_wait=5)
    created = Job.objects.get(id=first.id).created_at
    assert created + timedelta(seconds=1.9) < first.run_at <= created + timedelta(seconds=2.1)
    again = create(user, "debounce", period=2, max_wait=5, seconds=3)
    assert again.dedupe_outcome == "debounced"
    assert again.run_at >= timezone.now() + timedelta(seconds=1.5)
    Job.objects.filter(id=first.id).update(created_at=F("created_at") - timedelta(seconds=4))
    capped = create(user, "debounce", period=2, max_wait=5)
    assert capped.run_at == Job.objects.get(id=first.id).created_at + timedelta(seconds=5)


def test_a_debounced_job_is_not_started_early(user):
    first = create(user, "debounce", period=2)
    assert start(first) is None  # due in 2 s: inside the usual 2 s early delivery, refused for debounce
    Job.objects.filter(id=first.id).update(run_at=timezone.now() - timedelta(seconds=1))
    assert start(first) is not None


def test_keep_latest_stores_requests_while_running_and_one_follow_up_comes_when_it_ends(user):
    first = create(user, "keep_latest")
    started = start(first)
    for second in range(2, 6):
        answer = create(user, "keep_latest", seconds=second)
        assert (answer.id, answer.dedupe_outcome) == (first.id, "follow_up_queued")
    job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w1")
    follow_ups = Job.objects.exclude(id=first.id)
    assert [(job.args, job.status, job.unique_held) for job in follow_ups] == [([5], "pending", True)]
    assert Job.objects.get(id=first.id).unique_follow_up is None


def test_keep_latest_without_requests_while_running_has_no_follow_up(user):
    first = create(user, "keep_latest")
    started = start(first)
    job_fail(job_id=first.id, attempts=started.attempts, worker="w1", error="x", error_type="E", traceback="")
    assert Job.objects.count() == 1


def test_keep_latest_follow_up_after_a_failure_too(user):
    first = create(user, "keep_latest")
    started = start(first)
    create(user, "keep_latest", seconds=9)
    job_fail(job_id=first.id, attempts=started.attempts, worker="w1", error="x", error_type="E", traceback="")
    assert list(Job.objects.exclude(id=first.id).values_list("args", flat=True)) == [[9]]


# --- cancel_running -------------------------------------------------------------------------------


def test_cancel_running_returns_a_pending_holder_and_cancels_a_running_one(user):
    first = create(user, "cancel_running")
    assert create(user, "cancel_running").dedupe_outcome == "existing"
    start(first)
    second = create(user, "cancel_running")
    assert second.id != first.id and second.dedupe_outcome == "cancelled_running"
    row = Job.objects.get(id=first.id)
    assert row.cancel_requested_at is not None
    line = JobEvent.objects.get(job=first, kind="cancel_requested")
    assert line.actor == user and "cancel_running" in line.message
    assert held() == [second.id]


# --- bulk -----------------------------------------------------------------------------------------


def test_bulk_dedupes_inside_the_request_and_against_existing_jobs(user):
    before = create(user, key="a")
    items = [
        {"celery_task_name": LONG, "args": [1], "unique": {"key": "a"}},
        {"celery_task_name": LONG, "args": [2], "unique": {"key": "b"}},
        {"celery_task_name": LONG, "args": [3], "unique": {"key": "b"}},
        {"celery_task_name": LONG, "args": [4]},
    ]
    jobs = job_create_bulk(owner=user, items=items)
    assert jobs[0].id == before.id and jobs[0].dedupe_outcome == "existing"
    assert jobs[1].dedupe_outcome is None and jobs[2].id == jobs[1].id and jobs[2].dedupe_outcome == "existing"
    assert jobs[3].unique_key is None
    assert Job.objects.count() == 3


def test_bulk_names_the_item_of_a_bad_rule(user):
    with pytest.raises(InvalidInput) as error:
        job_create_bulk(owner=user, items=[{"celery_task_name": LONG, "unique": {"policy": "nope"}}])
    assert "jobs[0].unique.policy" in error.value.fields


# --- the derived key and the rules' checks --------------------------------------------------------


def test_the_key_is_derived_from_the_task_and_arguments_or_the_named_kwargs(user):
    one = job_create(owner=user, celery_task_name=LONG, args=[1], kwargs={"a": "x"}, unique={})
    assert job_create(owner=user, celery_task_name=LONG, args=[1], kwargs={"a": "x"}, unique={}).id == one.id
    assert job_create(owner=user, celery_task_name=LONG, args=[2], kwargs={"a": "x"}, unique={}).id != one.id
    named = {"kwargs": ["a"]}
    two = job_create(owner=user, celery_task_name=LONG, args=[1], kwargs={"a": "y", "b": "1"}, unique=named)
    three = job_create(owner=user, celery_task_name=LONG, args=[5], kwargs={"a": "y", "b": "2"}, unique=named)
    assert two.id == three.id and len(two.unique_key) <= 255


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"policy": "nope"}, "unique.policy"),
        ({"policy": "throttle"}, "unique.period"),
        ({"policy": "debounce"}, "unique.period"),
        ({"policy": "debounce", "period": 5, "max_wait": 2}, "unique.max_wait"),
        ({"policy": "reject", "max_wait": 2}, "unique.max_wait"),
        ({"policy": "reject", "period": 2}, "unique.period"),
        ({"key": ""}, "unique.key"),
        ({"key": "   "}, "unique.key"),
        ({"key": "x" * 256}, "unique.key"),
        ({"period": -1, "policy": "throttle"}, "unique.period"),
        ({"period": "soon", "policy": "throttle"}, "unique.period"),
        ({"kwargs": "a"}, "unique.kwargs"),
        ({"key": "k", "kwargs": ["a"]}, "unique.kwargs"),
        ({"colour": "red"}, "unique.colour"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_nothing_is_written(user, rule, field):
    with pytest.raises(InvalidInput) as error:
        job_create(owner=user, celery_task_name=LONG, unique=rule)
    assert field in error.value.fields
    assert not Job.objects.exists()


def test_recovery_of_a_dead_workers_job_releases_its_key(user):
    from jobs.services.recovery import job_recover_stale

    first = create(user)
    start(first)
    Job.objects.filter(id=first.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    job_recover_stale()
    row = Job.objects.get(id=first.id)
    assert row.status in (JobStatus.FAILED, JobStatus.PENDING, JobStatus.REVOKED)
    if row.status == JobStatus.PENDING:  # re-queued: still the key's (reject holds it in pending)
        assert held() == [first.id]
    else:
        assert held() == []


def test_a_tasks_default_rule_applies_when_a_request_gives_none(user, monkeypatch):
    import dataclasses

    from jobs.catalog import CatalogEntry, catalog
    from jobs.unique import unique_rule

    entry = catalog.get(LONG)
    monkeypatch.setitem(
        catalog._entries, entry.name, dataclasses.replace(entry, unique=unique_rule({"policy": "reject"}))
    )
    first = job_create(owner=user, celery_task_name=LONG, args=[1])
    assert job_create(owner=user, celery_task_name=LONG, args=[1]).id == first.id
    assert job_create(owner=user, celery_task_name=LONG, args=[2]).id != first.id
    with pytest.raises(InvalidInput) as error:
        CatalogEntry.from_function(entry.function, name="x.y", unique={"policy": "throttle"})
    assert "x.y: unique.period" in error.value.fields
