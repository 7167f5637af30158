"""The job state machine, through the service functions (no worker needed).

Every legal transition and the illegal ones around it; each test asserts on the job row and
its timeline, which are the truth clients and operators see.
"""

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.catalog import RetryPolicy, catalog
from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.services import RunState, task_service
from jobs.tests.factories import LONG_RUNNING_TASK, JobFactory
from taskhub.errors import ApplicationError, Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK
TERMINAL = ["succeeded", "failed", "revoked"]


def make(status: str = "pending", **fields) -> Job:
    """A row in ``status`` (the factory trait of that name), no event, nothing sent."""
    return JobFactory(**({status: True} if status != "pending" else {}), **fields)


def kinds(job: Job) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job.id).order_by("at", "id").values_list("kind", flat=True))


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def snapshot(job: Job) -> dict:
    """Every column of the row, to prove that a refused change wrote nothing."""
    return Job.objects.filter(id=job.id).values().get()


# --- create --------------------------------------------------------------------------------------


def test_create_writes_a_pending_row_and_a_created_event(user):
    job = services.job_create(owner=user, celery_task_name=LONG, name="count", task_type="demo", args=[3])

    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.PENDING
    assert row.owner == user
    assert (row.name, row.task_type, row.celery_task_name) == ("count", "demo", LONG)
    assert (row.args, row.kwargs) == ([3], {})
    assert (row.progress, row.attempts, row.result) == (0, 0, None)
    assert row.dispatched_at is None  # sent after commit, not before
    event = JobEvent.objects.get(job=row)
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
    job = services.job_create(owner=user, celery_task_name=LONG, priority=priority)
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
    kwargs = {"to": ["a@example.com"], "subject": "hi"} if "notification" in task else {}
    job = services.job_create(owner=user, celery_task_name=task, kwargs=kwargs)
    row = Job.objects.get(id=job.id)
    assert (row.priority, row.queue, row.max_retries) == (priority, queue, max_retries)
    assert row.name == task.rsplit(".", 1)[-1]


def test_create_stores_the_canonical_name_of_an_alias(user):
    job = services.job_create(
        owner=user,
        celery_task_name="app.tasks.common_tasks.long_running_task",
        args=[60],
    )
    assert Job.objects.get(id=job.id).celery_task_name == LONG


def test_create_sends_after_commit_with_the_job_id_as_celery_task_id(
    user, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_create(
            owner=user,
            celery_task_name=LONG,
            args=[5],
            kwargs={"k": "v"},
            priority="high",
        )
    assert published == []  # nothing leaves before the transaction commits
    assert len(callbacks) == 1

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
        services.job_create(owner=user, **{"celery_task_name": LONG, **fields})
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
        services.job_create(owner=user, **{"celery_task_name": LONG, **fields})
    assert list(caught.value.fields) == [field]
    assert Job.objects.count() == 0


def test_create_with_an_idempotency_key_returns_the_first_job(user, other_user):
    first = services.job_create(owner=user, celery_task_name=LONG, args=[1], idempotency_key="k-1")
    again = services.job_create(owner=user, celery_task_name=LONG, args=[1], idempotency_key="k-1")
    assert again.id == first.id
    with pytest.raises(ApplicationError) as caught:
        services.job_create(owner=user, celery_task_name=LONG, args=[2], idempotency_key="k-1")
    assert (caught.value.code, caught.value.status_code) == (
        "idempotency_key_reused",
        422,
    )
    # Keys belong to their owner.
    theirs = services.job_create(owner=other_user, celery_task_name=LONG, args=[2], idempotency_key="k-1")
    assert theirs.id != first.id
    assert Job.objects.count() == 2
    assert JobEvent.objects.count() == 2


def test_create_refuses_a_staff_only_task_to_a_plain_user(user, staff_user, monkeypatch):
    entry = catalog.get(LONG)
    monkeypatch.setitem(catalog._entries, entry.name, dataclasses.replace(entry, staff_only=True))
    with pytest.raises(ApplicationError) as caught:
        services.job_create(owner=user, celery_task_name=LONG)
    assert (caught.value.code, caught.value.status_code) == ("permission_denied", 403)
    assert services.job_create(owner=staff_user, celery_task_name=LONG).owner == staff_user
    assert Job.objects.count() == 1


def test_bulk_create_writes_every_job_with_its_event(user, published, django_capture_on_commit_callbacks):
    items = [{"celery_task_name": LONG, "args": [n], "priority": "low"} for n in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        jobs = services.jobs_create_bulk(owner=user, items=items)
    assert [job.args for job in jobs] == [[0], [1], [2]]
    assert Job.objects.filter(status="pending", queue="low_priority", dispatched_at__isnull=False).count() == 3
    assert JobEvent.objects.filter(kind="created").count() == 3
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
        services.jobs_create_bulk(owner=user, items=items)
    assert caught.value.message.startswith("jobs[1].args[0]: parameter 'seconds'")
    assert list(caught.value.fields) == ["jobs[1].args"]
    assert (Job.objects.count(), JobEvent.objects.count(), callbacks) == (0, 0, [])


def test_bulk_create_over_the_limit_is_refused(user, settings):
    settings.JOB_BULK_MAX = 2
    with pytest.raises(InvalidInput) as caught:
        services.jobs_create_bulk(owner=user, items=[{"celery_task_name": LONG}] * 3)
    assert caught.value.code == "too_many"
    assert Job.objects.count() == 0


# --- start ---------------------------------------------------------------------------------------


def test_start_moves_pending_to_running():
    job = make()
    started = services.job_start(job_id=job.id, worker="w1:42")
    assert started.id == job.id
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.RUNNING
    assert row.worker == "w1:42"
    assert row.started_at is not None and row.heartbeat_at is not None
    event = JobEvent.objects.get(job=row)
    assert (event.kind, event.from_status, event.to_status, event.actor_label) == (
        "started",
        "pending",
        "running",
        "worker w1:42",
    )


@pytest.mark.parametrize("status", ["running", *TERMINAL])
def test_start_of_a_job_that_is_not_pending_returns_none_and_changes_nothing(status):
    job = make(status)
    before = snapshot(job)
    assert services.job_start(job_id=job.id, worker="w2:1") is None
    assert snapshot(job) == before
    assert kinds(job) == []


def test_start_of_an_unknown_job_returns_none(db):
    assert services.job_start(job_id="00000000-0000-0000-0000-000000000000", worker="w") is None


# --- progress ------------------------------------------------------------------------------------


def test_progress_is_written_to_a_running_job():
    job = make("running")
    assert (
        services.job_update_progress(job_id=job.id, progress=42, meta={"step": 2}, message="half", attempt=0)
        is RunState.OK
    )
    row = Job.objects.get(id=job.id)
    assert (row.progress, row.progress_meta) == (42, {"step": 2, "message": "half"})
    assert row.status == JobStatus.RUNNING


@pytest.mark.parametrize("status", ["pending", *TERMINAL])
def test_late_progress_never_revives_a_finished_job(status):
    job = make(status, progress=7 if status != "succeeded" else 100)
    before = snapshot(job)
    assert services.job_update_progress(job_id=job.id, progress=50, message="late") is RunState.GONE
    assert services.job_update_progress(job_id=job.id, progress=60, attempt=0) is RunState.GONE
    assert snapshot(job) == before


def test_progress_of_a_deleted_job_is_gone(db):
    assert services.job_update_progress(job_id="00000000-0000-0000-0000-000000000000", progress=5) is RunState.GONE


@pytest.mark.parametrize("progress", [-1, 101, 100.5, "50", None, True, float("nan")])
def test_progress_outside_0_to_100_is_invalid(progress):
    job = make("running", progress=10)
    with pytest.raises(InvalidInput) as caught:
        services.job_update_progress(job_id=job.id, progress=progress)
    assert "progress" in caught.value.fields
    assert Job.objects.get(id=job.id).progress == 10


@pytest.mark.parametrize("meta", [{"loss": float("nan")}, {"note": "a\x00b"}, {"when": object()}])
def test_progress_metadata_that_cannot_be_stored_is_invalid(meta):
    job = make("running", progress=10, progress_meta={"message": "before"})
    with pytest.raises(InvalidInput) as caught:
        services.job_update_progress(job_id=job.id, progress=20, meta=meta)
    assert "progress_meta" in caught.value.fields
    job.refresh_from_db()
    assert job.progress == 10 and job.progress_meta == {"message": "before"}


def test_progress_with_a_stale_attempt_is_fenced_off():
    """A worker that lost its job (re-queued as attempt 1) cannot write over the new attempt."""
    job = make("running", attempts=1, progress=30)
    assert services.job_update_progress(job_id=job.id, progress=90, attempt=0) is RunState.GONE
    assert Job.objects.get(id=job.id).progress == 30
    assert services.job_update_progress(job_id=job.id, progress=35, attempt=1) is RunState.OK
    assert Job.objects.get(id=job.id).progress == 35


def test_progress_of_a_job_being_cancelled_asks_the_task_to_stop():
    job = make("running", progress=10, cancel_requested_at=timezone.now())
    assert services.job_update_progress(job_id=job.id, progress=20, attempt=0) is RunState.CANCEL_REQUESTED
    assert Job.objects.get(id=job.id).progress == 10


def test_heartbeat_refreshes_and_flushes_progress():
    job = make("running", heartbeat_at=timezone.now() - timedelta(seconds=30))
    state_, _ = services.job_record_heartbeat(job_id=job.id, attempt=0, progress=15, meta={"message": "m"})
    assert state_ is RunState.OK
    row = Job.objects.get(id=job.id)
    assert (row.progress, row.progress_meta) == (15, {"message": "m"})
    assert row.heartbeat_at > timezone.now() - timedelta(seconds=5)
    assert services.job_record_heartbeat(job_id=job.id, attempt=1)[0] is RunState.GONE


def test_heartbeat_of_a_job_being_cancelled_keeps_it_fresh_and_reports_the_request():
    """While a cancelled job winds down its worker is alive: the sweeper must not reap it."""
    requested = timezone.now() - timedelta(seconds=20)
    job = make("running", heartbeat_at=timezone.now() - timedelta(seconds=30), cancel_requested_at=requested)
    state_, requested_at = services.job_record_heartbeat(job_id=job.id, attempt=0)
    assert state_ is RunState.CANCEL_REQUESTED and requested_at == requested
    assert Job.objects.get(id=job.id).heartbeat_at > timezone.now() - timedelta(seconds=5)


# --- succeed -------------------------------------------------------------------------------------


def test_succeed_stores_the_result_and_completes_progress():
    job = make("running", progress=60)
    services.job_succeed(job_id=job.id, attempt=0, result={"rows": 3, "at": "now"}, worker="w1:1")
    row = Job.objects.get(id=job.id)
    assert (row.status, row.progress, row.result) == (
        "succeeded",
        100,
        {"rows": 3, "at": "now"},
    )
    assert row.finished_at is not None
    assert kinds(job) == ["succeeded"]


@pytest.mark.parametrize(
    "result",
    [
        object(),
        {1, 2},
        {"loss": float("nan")},
        [float("inf")],
        {"text": "a\x00b"},
        "\udc80",
        nested(150),
    ],
)
def test_succeed_with_a_result_that_is_not_json_is_refused(result):
    job = make("running", progress=60)
    with pytest.raises(InvalidInput) as caught:
        services.job_succeed(job_id=job.id, attempt=0, result=result)
    assert caught.value.code == "result_not_json"
    row = Job.objects.get(id=job.id)
    assert (row.status, row.result) == (
        "running",
        None,
    )  # still running: the task base records the failure


@pytest.mark.parametrize("status", ["pending", *TERMINAL])
def test_succeed_of_a_job_that_is_not_running_is_a_conflict(status):
    job = make(status)
    before = snapshot(job)
    with pytest.raises(Conflict):
        services.job_succeed(job_id=job.id, attempt=0, result=1)
    assert snapshot(job) == before


def test_succeed_of_a_stale_attempt_is_a_conflict():
    job = make("running", attempts=2)
    with pytest.raises(Conflict):
        services.job_succeed(job_id=job.id, attempt=1, result=1)
    assert Job.objects.get(id=job.id).status == JobStatus.RUNNING


# --- fail ----------------------------------------------------------------------------------------


def test_fail_with_retries_left_schedules_a_retry(published, django_capture_on_commit_callbacks):
    job = make("running", max_retries=2)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        retried = services.job_fail(
            job_id=job.id,
            attempt=0,
            error="OSError: down",
            traceback="tb",
            worker="w1:1",
        )
    assert retried is True
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.error) == ("pending", 1, "OSError: down")
    assert row.run_at > before  # backoff
    assert row.finished_at is None
    event = JobEvent.objects.get(job=row, kind=JobEventKind.RETRY_SCHEDULED)
    assert (event.from_status, event.to_status) == ("running", "pending")
    assert event.data["error"] == "OSError: down"
    assert event.data["traceback"] == "tb"
    assert "OSError: down" in event.message
    # Sent again (with a countdown) once the transaction committed.
    assert [m["id"] for m in published] == [str(job.id)]
    assert row.dispatched_at is not None


def test_fail_without_retries_left_fails_with_error_and_traceback():
    job = make("running", max_retries=1, attempts=1)
    assert services.job_fail(job_id=job.id, attempt=1, error="ValueError: bad", traceback="Traceback ...") is False
    row = Job.objects.get(id=job.id)
    assert (row.status, row.error, row.traceback, row.attempts) == (
        "failed",
        "ValueError: bad",
        "Traceback ...",
        1,
    )
    assert row.finished_at is not None
    assert kinds(job) == ["failed"]


def test_fail_that_is_not_retryable_fails_at_once():
    job = make("running", max_retries=3)
    assert services.job_fail(job_id=job.id, attempt=0, error="fatal", retryable=False) is False
    assert Job.objects.values_list("status", "attempts").get(id=job.id) == ("failed", 0)


def test_every_attempt_keeps_its_error_in_the_timeline():
    job = make(max_retries=1)
    services.job_start(job_id=job.id, worker="w")
    services.job_fail(job_id=job.id, attempt=0, error="first error")
    Job.objects.filter(id=job.id).update(run_at=None)
    services.job_start(job_id=job.id, worker="w")
    services.job_fail(job_id=job.id, attempt=1, error="second error")
    row = Job.objects.get(id=job.id)
    assert (row.status, row.error, row.attempts) == ("failed", "second error", 1)
    assert kinds(job) == ["started", "retry_scheduled", "started", "failed"]
    errors = [e.data.get("error") for e in JobEvent.objects.filter(job=row, kind__in=["retry_scheduled", "failed"])]
    assert errors == ["first error", "second error"]


@pytest.mark.parametrize("status", ["pending", *TERMINAL])
def test_fail_of_a_job_that_is_not_running_is_a_conflict(status):
    job = make(status, max_retries=3)
    before = snapshot(job)
    with pytest.raises(Conflict):
        services.job_fail(job_id=job.id, attempt=0, error="late")
    assert snapshot(job) == before


def test_fail_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        services.job_fail(job_id="00000000-0000-0000-0000-000000000000", attempt=0, error="x")


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_of_a_pending_job_revokes_it_at_once(user):
    job = make()
    cancelled = services.job_cancel(job_id=job.id, by=user)
    assert cancelled.status == JobStatus.REVOKED
    row = Job.objects.get(id=job.id)
    assert (row.status, row.cancelled_by) == ("revoked", user)
    assert row.cancel_requested_at is not None and row.finished_at is not None
    event = JobEvent.objects.get(job=row)
    assert (event.kind, event.from_status, event.to_status, event.actor) == (
        "revoked",
        "pending",
        "revoked",
        user,
    )
    # The message may still be in the broker: the worker must then skip it.
    assert services.job_start(job_id=job.id, worker="w") is None
    assert Job.objects.get(id=job.id).status == JobStatus.REVOKED


def test_cancel_of_a_running_job_requests_a_stop(user):
    job = make("running", progress=40)
    cancelled = services.job_cancel(job_id=job.id, by=user)
    row = Job.objects.get(id=job.id)
    assert cancelled.status == row.status == JobStatus.RUNNING
    assert row.cancel_requested_at is not None
    assert row.cancelled_by == user
    assert row.finished_at is None
    assert kinds(job) == ["cancel_requested"]
    # The task learns it at its next progress call and stops; the row ends revoked.
    assert services.job_update_progress(job_id=job.id, progress=50, attempt=0) is RunState.CANCEL_REQUESTED
    services.job_stop_revoked(job_id=job.id, attempt=0, reason="stopped")
    assert Job.objects.values_list("status", "progress").get(id=job.id) == (
        "revoked",
        40,
    )
    assert kinds(job) == ["cancel_requested", "revoked"]


def test_cancel_twice_is_a_conflict(user):
    pending, running = make(), make("running")
    services.job_cancel(job_id=pending.id, by=user)
    services.job_cancel(job_id=running.id, by=user)
    with pytest.raises(Conflict) as caught:
        services.job_cancel(job_id=pending.id, by=user)
    assert caught.value.code == "invalid_state"
    with pytest.raises(Conflict) as caught:
        services.job_cancel(job_id=running.id, by=user)
    assert caught.value.code == "cancel_pending"
    assert JobEvent.objects.count() == 2


@pytest.mark.parametrize("status", TERMINAL)
def test_cancel_of_a_finished_job_is_a_conflict(user, status):
    job = make(status)
    before = snapshot(job)
    with pytest.raises(Conflict) as caught:
        services.job_cancel(job_id=job.id, by=user)
    assert status in caught.value.message
    assert snapshot(job) == before


def test_cancel_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        services.job_cancel(job_id="00000000-0000-0000-0000-000000000000")


# --- retry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "revoked"])
def test_retry_runs_the_same_job_again_and_keeps_its_history(
    user, status, published, django_capture_on_commit_callbacks
):
    job = make(status, attempts=0, progress=30, worker="w1:1")
    JobEvent.objects.create(job=job, kind=status, to_status=status, message="earlier")
    old_error = job.error
    with django_capture_on_commit_callbacks(execute=True):
        retried = services.job_retry(job_id=job.id, by=user)
    assert retried.id == job.id
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts, row.progress, row.error, row.worker) == (
        "pending",
        1,
        0,
        "",
        "",
    )
    assert row.finished_at is None and row.cancel_requested_at is None
    assert kinds(job) == [status, "retried"]
    event = JobEvent.objects.get(job=row, kind="retried")
    assert (event.from_status, event.to_status, event.actor) == (
        status,
        "pending",
        user,
    )
    assert event.data == {"previous_error": old_error, "attempt": 1}
    assert [m["id"] for m in published] == [str(job.id)]
    assert row.dispatched_at is not None


@pytest.mark.parametrize("status", ["pending", "running", "succeeded"])
def test_retry_of_a_job_that_did_not_fail_is_a_conflict(user, status, django_capture_on_commit_callbacks):
    job = make(status)
    before = snapshot(job)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Conflict) as caught,
    ):
        services.job_retry(job_id=job.id, by=user)
    assert caught.value.code == "invalid_state"
    assert (snapshot(job), kinds(job), callbacks) == (before, [], [])


def test_retry_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        services.job_retry(job_id="00000000-0000-0000-0000-000000000000")


# --- delete --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", TERMINAL)
def test_delete_removes_a_finished_job_with_its_timeline(status):
    job, kept = make(status), make("succeeded")
    JobEvent.objects.create(job=job, kind="created")
    JobEvent.objects.create(job=kept, kind="created")
    services.job_delete(job_id=job.id)
    assert not Job.objects.filter(id=job.id).exists()
    assert not JobEvent.objects.filter(job_id=job.id).exists()
    assert JobEvent.objects.filter(job=kept).count() == 1


@pytest.mark.parametrize("status", ["pending", "running"])
def test_delete_of_an_active_job_says_to_cancel_first(status):
    job = make(status)
    with pytest.raises(Conflict) as caught:
        services.job_delete(job_id=job.id)
    assert caught.value.code == "job_active"
    assert "cancel it first" in caught.value.message
    assert Job.objects.filter(id=job.id).exists()


def test_delete_of_an_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        services.job_delete(job_id="00000000-0000-0000-0000-000000000000")


# --- the sweeper ---------------------------------------------------------------------------------


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_sweep_sends_pending_jobs_whose_message_never_left(settings, published):
    settings.JOB_DISPATCH_AFTER = 10
    unsent = make(created_at=ago(60))
    fresh = make(created_at=ago(1))  # its own after-commit send may still be on its way
    later = make(created_at=ago(60), run_at=timezone.now() + timedelta(hours=1))
    sent = make(created_at=ago(60), dispatched_at=ago(50))
    report = services.jobs_sweep()
    assert report.dispatched == 1
    assert [m["id"] for m in published] == [str(unsent.id)]
    assert Job.objects.get(id=unsent.id).dispatched_at is not None
    assert kinds(unsent) == ["dispatched"]
    for job in (fresh, later, sent):
        assert Job.objects.get(id=job.id).dispatched_at == job.dispatched_at
        assert kinds(job) == []


def test_sweep_sends_a_scheduled_job_when_it_is_due(published):
    due = make(created_at=ago(3600), run_at=timezone.now() + timedelta(seconds=1))
    services.jobs_sweep()
    assert [m["id"] for m in published] == [str(due.id)]


def test_sweep_sends_again_a_job_nobody_started_long_after_it_was_sent(settings, published):
    settings.JOB_REDISPATCH_AFTER = 600
    lost = make(created_at=ago(4000), dispatched_at=ago(3600))
    services.jobs_sweep()
    assert [m["id"] for m in published] == [str(lost.id)]
    assert Job.objects.get(id=lost.id).dispatched_at > ago(5)


def test_sweep_requeues_a_running_job_whose_worker_died(settings, published, django_capture_on_commit_callbacks):
    settings.JOB_STALE_AFTER = 60
    job = make("running", max_retries=1, heartbeat_at=ago(120), worker="dead:1")
    with django_capture_on_commit_callbacks(execute=True):
        report = services.jobs_sweep()
    assert report.requeued == 1
    row = Job.objects.get(id=job.id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.error.startswith("Worker lost")
    assert kinds(job) == ["requeued"]
    assert [m["id"] for m in published] == [str(job.id)]
    # The dead worker's late writes can no longer touch the new attempt.
    assert services.job_update_progress(job_id=job.id, progress=99, attempt=0) is RunState.GONE


def test_sweep_fails_a_lost_job_without_retries_left(settings):
    settings.JOB_STALE_AFTER = 60
    job = make("running", max_retries=1, attempts=1, heartbeat_at=ago(120))
    assert services.jobs_sweep().failed == 1
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.FAILED
    assert row.error.startswith("Worker lost")
    assert row.finished_at is not None
    assert kinds(job) == ["failed"]


def test_sweep_revokes_a_lost_job_that_was_being_cancelled(settings):
    settings.JOB_STALE_AFTER = 60
    job = make("running", max_retries=3, heartbeat_at=ago(120), cancel_requested_at=ago(100))
    assert services.jobs_sweep().revoked == 1
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.REVOKED
    assert row.finished_at is not None
    assert kinds(job) == ["revoked"]


def test_sweep_leaves_live_jobs_alone(settings, published):
    settings.JOB_STALE_AFTER = 60
    live = make("running", max_retries=1, heartbeat_at=ago(5))
    before = snapshot(live)
    assert services.jobs_sweep() == services.SweepReport()
    assert snapshot(live) == before
    assert published == []


# --- retry_delay ---------------------------------------------------------------------------------


def entry_with(**policy):
    return dataclasses.replace(catalog.get(LONG), retry=RetryPolicy(**policy))


def test_retry_delay_grows_exponentially_up_to_the_cap():
    entry = entry_with(max_retries=10, backoff=2.0, backoff_max=60.0, jitter=False)
    delays = [services.retry_delay(entry=entry, attempt=attempt) for attempt in range(7)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_retry_delay_jitter_stays_between_half_and_the_full_delay():
    entry = entry_with(max_retries=10, backoff=2.0, backoff_max=60.0, jitter=True)
    for attempt, full in [(0, 2.0), (3, 16.0), (9, 60.0)]:
        samples = [services.retry_delay(entry=entry, attempt=attempt) for _ in range(200)]
        assert all(full / 2 <= delay <= full for delay in samples)
        assert len(set(samples)) > 1  # jittered: retries of many jobs spread out


# --- the spec's task_service facade --------------------------------------------------------------


def test_task_service_create_task_as_in_the_spec(user):
    task, celery_id = task_service.create_task(
        db=None,
        name="测试任务",
        task_type="test_task",
        celery_task_name="app.tasks.common_tasks.long_running_task",
        args=[30],
        kwargs={},
        priority="normal",
        user_id=user.id,
    )
    assert celery_id == str(task.id)
    row = Job.objects.get(id=task.id)
    assert (row.name, row.task_type, row.args, row.priority, row.queue, row.owner) == (
        "测试任务",
        "test_task",
        [30],
        "normal",
        "default",
        user,
    )


def test_task_service_get_cancel_and_delete_as_in_the_spec(user):
    db = None
    task, _ = task_service.create_task(db=db, name="t", task_type="x", celery_task_name=LONG, args=[1], user_id=user.id)
    task_id = task.id

    task = task_service.get_task(db, task_id)
    assert task.status in ("pending", "running", "succeeded", "failed", "revoked")
    assert (task.progress, task.result) == (0, None)
    assert task_service.get_task(db, "00000000-0000-0000-0000-000000000000") is None

    assert task_service.delete_task(db, task_id) is False  # still pending: cancel first
    assert task_service.cancel_task(db, task_id) is True
    assert task_service.get_task(db, task_id).status == "revoked"
    assert task_service.cancel_task(db, task_id) is False  # already revoked
    assert task_service.delete_task(db, task_id) is True
    assert task_service.get_task(db, task_id) is None
    assert task_service.delete_task(db, task_id) is False


def test_task_service_progress_and_status_updates_as_in_the_spec():
    db = None
    job = make()
    task_id = job.id
    assert (
        task_service.update_task_progress(db, task_id, 50, {"status": "processing", "step": 2}) is False
    )  # not started
    assert task_service.update_task_status(db, task_id, "running") is True

    assert task_service.update_task_progress(db, task_id, 50, {"status": "processing", "step": 2}) is True
    row = Job.objects.get(id=task_id)
    assert (row.progress, row.progress_meta) == (
        50,
        {"status": "processing", "step": 2},
    )

    assert task_service.update_task_status(db, task_id, "succeeded", 100, {"result": "success"}) is True
    row = Job.objects.get(id=task_id)
    assert (row.status, row.progress, row.result) == (
        "succeeded",
        100,
        {"result": "success"},
    )

    # Illegal moves are refused, never forced.
    assert task_service.update_task_status(db, task_id, "running") is False
    assert task_service.update_task_progress(db, task_id, 10, {}) is False
    assert task_service.update_task_status(db, task_id, "bogus") is False
    assert Job.objects.values_list("status", "progress").get(id=task_id) == (
        "succeeded",
        100,
    )


def test_task_service_status_updates_follow_the_state_machine():
    db = None
    failing, retried, revoked = make("running"), make("failed"), make()
    assert task_service.update_task_status(db, failing.id, "failed", None, "boom") is True
    assert Job.objects.values_list("status", "error").get(id=failing.id) == (
        "failed",
        "boom",
    )
    assert task_service.update_task_status(db, retried.id, "pending") is True
    assert Job.objects.values_list("status", "attempts").get(id=retried.id) == (
        "pending",
        1,
    )
    assert task_service.update_task_status(db, revoked.id, "revoked") is True
    assert Job.objects.get(id=revoked.id).status == "revoked"
    assert task_service.update_task_status(db, "00000000-0000-0000-0000-000000000000", "running") is False
