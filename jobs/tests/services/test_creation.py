"""Creating jobs (jobs.services.creation): what is checked, what is written, what is sent."""

import dataclasses

import pytest
from django.contrib.auth.models import Permission

from jobs.catalog import catalog
from jobs.models import Job, JobEvent, JobStatus
from jobs.services.creation import job_create, job_create_bulk
from jobs.tests.factories import LONG_RUNNING_TASK, kinds, nested, timeline
from taskhub.errors import ApplicationError, InvalidInput

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


# --- create --------------------------------------------------------------------------------------


def test_create_writes_a_pending_row_and_a_created_event(user):
    job = job_create(owner=user, celery_task_name=LONG, name="count", task_type="demo", args=[3])

    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.PENDING
    assert row.owner == user
    assert (row.name, row.task_type, row.celery_task_name) == ("count", "demo", LONG)
    assert (row.args, row.kwargs) == ([3], {})
    assert (row.progress, row.attempts, row.result) == (0, 0, None)
    assert row.dispatched_at is None  # sent after commit, not before
    (event,) = timeline(row)
    assert (event.kind, event.from_status, event.to_status) == (
        "created",
        "",
        "pending",
    )
    assert event.actor == user
    assert "queue default" in event.message


@pytest.mark.parametrize(
    ("priority", "queue"),
    [
        ("urgent", "high_priority"),
        ("high", "high_priority"),
        ("normal", "default"),
        ("low", "low_priority"),
    ],
)
def test_create_routes_the_priority_to_its_queue(user, priority, queue):
    # Urgent is an operator's right (jobs.submit_urgent): this user has it.
    user.user_permissions.add(Permission.objects.get(codename="submit_urgent", content_type__app_label="jobs"))
    job = job_create(owner=user, celery_task_name=LONG, priority=priority)
    assert Job.objects.values_list("priority", "queue").get(id=job.id) == (
        priority,
        queue,
    )


@pytest.mark.parametrize(
    ("task", "priority", "queue", "max_retries"),
    [
        (LONG, "normal", "default", 0),
        (
            "jobs.tasks.high_priority_tasks.send_notification",
            "urgent",
            "high_priority",
            5,
        ),
        ("jobs.tasks.common_tasks.flaky_task", "low", "low_priority", 3),
    ],
)
def test_create_takes_priority_and_retries_from_the_catalog_entry(user, task, priority, queue, max_retries):
    kwargs = {"to": [user.email], "subject": "hi"} if "notification" in task else {}
    job = job_create(owner=user, celery_task_name=task, kwargs=kwargs)
    row = Job.objects.get(id=job.id)
    assert (row.priority, row.queue, row.max_retries) == (priority, queue, max_retries)
    assert row.name == task.rsplit(".", 1)[-1]


def test_create_stores_the_canonical_name_of_an_alias(user):
    job = job_create(
        owner=user,
        celery_task_name="app.tasks.common_tasks.long_running_task",
        args=[60],
    )
    assert Job.objects.get(id=job.id).celery_task_name == LONG


def test_create_sends_after_commit_with_the_job_id_as_celery_task_id(
    user, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = job_create(
            owner=user,
            celery_task_name=LONG,
            args=[5],
            kwargs={"k": "v"},
            priority="high",
        )
    assert published == []  # nothing leaves before the transaction commits
    assert len(callbacks) == 2  # the send, then the new job's state for live streams (jobs/live.py)

    callbacks[0]()
    assert published == [
        {
            "id": str(job.id),
            "task": LONG,
            "routing_key": "high_priority",
            "args": [5],
            "kwargs": {"k": "v"},
        }
    ]
    assert Job.objects.get(id=job.id).dispatched_at is not None


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"celery_task_name": "os.system"}, "celery_task_name", "unknown_task"),
        ({"args": ["x"]}, "args", "invalid_arguments"),
        ({"priority": "asap"}, "priority", "invalid"),
        ({"kwargs": {"seconds": 1, "blob": "x" * 300}}, "args", "payload_too_large"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(
    user, settings, published, django_capture_on_commit_callbacks, fields, field, code
):
    settings.JOB_MAX_PAYLOAD_BYTES = 200
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(InvalidInput) as caught,
    ):
        job_create(owner=user, **{"celery_task_name": LONG, **fields})
    assert (caught.value.code, list(caught.value.fields)) == (code, [field])
    assert (Job.objects.count(), JobEvent.objects.count(), callbacks, published) == (
        0,
        0,
        [],
        [],
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"celery_task_name": "process_data", "args": [[{"a": float("nan")}]]}, "args"),
        (
            {
                "celery_task_name": "process_data",
                "kwargs": {"records": [{"a": float("-inf")}]},
            },
            "kwargs",
        ),
        ({"kwargs": {"label": "nul\x00byte"}}, "kwargs"),
        ({"kwargs": {"label": "lone \ud83d surrogate"}}, "kwargs"),
        (
            {
                "celery_task_name": "process_data",
                "kwargs": {"records": [], "group_by": "\x00"},
            },
            "kwargs",
        ),
        (
            {"celery_task_name": "process_data", "kwargs": {"records": nested(150)}},
            "kwargs",
        ),
    ],
)
def test_create_refuses_values_the_database_cannot_store(user, fields, field):
    """Python callers (commands, admin) can pass what no JSON parser would: still a clean error."""
    with pytest.raises(InvalidInput) as caught:
        job_create(owner=user, **{"celery_task_name": LONG, **fields})
    assert list(caught.value.fields) == [field]
    assert Job.objects.count() == 0


def test_create_with_an_idempotency_key_returns_the_first_job(user, other_user):
    first = job_create(owner=user, celery_task_name=LONG, args=[1], idempotency_key="k-1")
    again = job_create(owner=user, celery_task_name=LONG, args=[1], idempotency_key="k-1")
    assert again.id == first.id
    with pytest.raises(ApplicationError) as caught:
        job_create(owner=user, celery_task_name=LONG, args=[2], idempotency_key="k-1")
    assert (caught.value.code, caught.value.status_code) == (
        "idempotency_key_reused",
        422,
    )
    # Keys belong to their owner.
    theirs = job_create(owner=other_user, celery_task_name=LONG, args=[2], idempotency_key="k-1")
    assert theirs.id != first.id
    assert Job.objects.count() == 2
    assert [kinds(job) for job in (first, theirs)] == [["created"], ["created"]]


def test_create_refuses_a_staff_only_task_to_a_plain_user(user, staff_user, monkeypatch):
    entry = catalog.get(LONG)
    monkeypatch.setitem(catalog._entries, entry.name, dataclasses.replace(entry, staff_only=True))
    with pytest.raises(ApplicationError) as caught:
        job_create(owner=user, celery_task_name=LONG)
    assert (caught.value.code, caught.value.status_code) == ("permission_denied", 403)
    assert job_create(owner=staff_user, celery_task_name=LONG).owner == staff_user
    assert Job.objects.count() == 1


def test_bulk_create_writes_every_job_with_its_event(user, published, django_capture_on_commit_callbacks):
    items = [{"celery_task_name": LONG, "args": [n], "priority": "low"} for n in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        jobs = job_create_bulk(owner=user, items=items)
    assert [job.args for job in jobs] == [[0], [1], [2]]
    assert Job.objects.filter(status="pending", queue="low_priority", dispatched_at__isnull=False).count() == 3
    assert [kinds(job) for job in jobs] == [["created"]] * 3
    assert sorted(message["id"] for message in published) == sorted(str(job.id) for job in jobs)


def test_bulk_create_with_one_bad_item_writes_nothing(user, django_capture_on_commit_callbacks):
    items = [
        {"celery_task_name": LONG, "args": [1]},
        {"celery_task_name": LONG, "args": ["x"]},
    ]
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(InvalidInput) as caught,
    ):
        job_create_bulk(owner=user, items=items)
    assert caught.value.message.startswith("jobs[1].args[0]: parameter 'seconds'")
    assert list(caught.value.fields) == ["jobs[1].args"]
    assert (Job.objects.count(), JobEvent.objects.count(), callbacks) == (0, 0, [])


def test_bulk_create_over_the_limit_is_refused(user, settings):
    settings.JOB_BULK_MAX = 2
    with pytest.raises(InvalidInput) as caught:
        job_create_bulk(owner=user, items=[{"celery_task_name": LONG}] * 3)
    assert caught.value.code == "too_many"
    assert Job.objects.count() == 0
