"""Django's standard task API (``django.tasks``: @task, enqueue, get_result, signals) on taskhub.

The tests marked ``standard`` run twice: on taskhub's backend with a real worker, and on Django's
own ImmediateBackend, showing taskhub behaves as the standard says. The others are what only a
backend with a worker, a job row and an API can show.
"""

import json
import time
from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobStatus
from jobs.tasks import standard_api
from jobs.tasks.django_backend import RUNNER_TASK, JobCancelled, TaskhubBackend, owned_by, taskhub_priority
from jobs.tasks.standard_api import InvalidTask, TaskResultDoesNotExist, TaskResultStatus
from jobs.tests import standard_tasks
from jobs.tests.factories import JobFactory, timeline
from taskhub.testing import wait_for
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]

IMMEDIATE = f"{standard_api.PACKAGE}.backends.immediate.ImmediateBackend"


@pytest.fixture
def signal_log(tmp_path, monkeypatch):
    """The standard signals received in this process and in its workers, in order."""
    path = tmp_path / "signals.jsonl"
    monkeypatch.setenv("TASKHUB_TEST_SIGNAL_LOG", str(path))

    def read(result_id=None) -> list[dict]:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [line for line in lines if result_id is None or line["id"] == result_id]

    read.path = path
    return read


@pytest.fixture(params=["taskhub", "immediate"])
def backend(request, settings, signal_log, transactional_db):
    """The alias of the backend under test; taskhub's with a worker that logs signals too."""
    if request.param == "immediate":
        settings.TASKS = {**settings.TASKS, "immediate": {"BACKEND": IMMEDIATE}}
        return "immediate"
    request.getfixturevalue("make_worker")(env={"TASKHUB_TEST_SIGNAL_LOG": str(signal_log.path)})
    return "default"


def finished(result, timeout: float = 30.0):
    """The result once finished: refreshed from the backend's store where the standard allows it."""
    if result.task.get_backend().supports_get_result:

        def done():
            result.refresh()
            return result.is_finished

        wait_for(done, timeout=timeout, message=f"result {result.id} to finish")
    assert result.is_finished, result.status
    return result


# -- the standard's behaviour, on both backends ----------------------------------------------------


def test_success_with_a_return_value_and_signals(backend, signal_log):
    result = standard_tasks.add.using(backend=backend).enqueue(2, 3)
    assert result.backend == backend and result.args == [2, 3] and result.kwargs == {}
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5 and result.errors == []
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.last_attempted_at <= result.finished_at
    if result.task.get_backend().supports_get_result:
        again = standard_tasks.add.get_result(result.id)  # in another process than the worker's
        assert again.return_value == 5 and again.worker_ids == result.worker_ids
    wait_for(lambda: len(signal_log(result.id)) == 3, timeout=10, message="three signals")
    signals = signal_log(result.id)
    assert [(s["signal"], s["status"]) for s in signals] == [
        ("enqueued", "READY"),
        ("started", "RUNNING"),
        ("finished", "SUCCESSFUL"),
    ]
    assert {s["sender"] for s in signals} == {type(result.task.get_backend()).__name__}
    assert signals[2]["attempts"] == 1


def test_async_task_runs(backend):
    assert standard_tasks.async_add.get_backend().supports_async_task
    result = finished(standard_tasks.async_add.using(backend=backend).enqueue(20, 22))
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_failure_with_errors(backend, signal_log):
    result = finished(standard_tasks.decline.using(backend=backend).enqueue("card declined"))
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018 - the standard raises for a failed task
    [error] = result.errors
    assert error.exception_class is standard_tasks.Declined
    assert error.exception_class_path == "jobs.tests.standard_tasks.Declined"
    assert "Traceback (most recent call last)" in error.traceback and "card declined" in error.traceback
    assert result.attempts == 1
    wait_for(lambda: len(signal_log(result.id)) == 3, timeout=10, message="three signals")
    assert signal_log(result.id)[2]["status"] == "FAILED"


def test_unknown_queue_name_is_refused(backend):
    jobs = Job.objects.count()
    with pytest.raises(InvalidTask, match="emails"):
        standard_tasks.add.using(backend=backend, queue_name="emails")
    assert Job.objects.count() == jobs


def test_run_after_is_honoured_or_refused_as_the_capability_says(backend):
    run_after = timezone.now() + timedelta(seconds=3)
    task = standard_tasks.add.using(backend=backend)
    if not task.get_backend().supports_defer:
        with pytest.raises(InvalidTask, match="run_after"):
            task.using(run_after=run_after)
        return
    result = task.using(run_after=run_after).enqueue(1, 1)
    time.sleep(1)
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.task.run_after == run_after
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.started_at >= run_after


# -- what taskhub adds: jobs, retries, priorities, progress, cancel, the catalog boundary ------------


def test_enqueue_creates_a_tracked_job_of_the_service_account(worker, staff_viewer, staff_client):
    result = finished(standard_tasks.add.enqueue(1, 2))
    job = Job.objects.select_related("owner").get(id=result.id)
    assert job.owner.username == settings.TASKS["default"]["OPTIONS"]["OWNER"] == "django-tasks"
    assert not job.owner.is_staff and not job.owner.has_usable_password()
    assert job.name == "jobs.tests.standard_tasks.add" and job.task_type == "django.tasks"
    assert job.celery_task_name == RUNNER_TASK and job.priority == "normal" and job.queue == "default"
    assert job.status == JobStatus.SUCCEEDED and job.result == 3 and result.job_status == "succeeded"
    assert [line.kind for line in timeline(job)] == ["created", "started", "succeeded"]
    # Listed in the API like any other job (staff with jobs.view_job see all).
    listed = staff_client.get("/api/v1/jobs/", {"task_type": "django.tasks"}).json()["results"]
    assert [item["id"] for item in listed] == [result.id]


def test_retries_are_counted_in_attempts(make_worker, settings, signal_log):
    make_worker(env={"TASKHUB_TEST_SIGNAL_LOG": str(signal_log.path)})
    settings.TASKS = {
        "default": {**settings.TASKS["default"], "OPTIONS": {**settings.TASKS["default"]["OPTIONS"], "MAX_RETRIES": 2}}
    }
    result = finished(standard_tasks.succeed_on_attempt.enqueue(3), timeout=45)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3
    assert result.attempts == 3 and len(result.worker_ids) == 3
    assert [e.exception_class for e in result.errors] == [RuntimeError, RuntimeError]
    assert "attempt 1 failed on purpose" in result.errors[0].traceback
    assert Job.objects.get(id=result.id).events.filter(kind="retry_scheduled").first().data["error"] == (
        "RuntimeError: attempt 1 failed on purpose"  # as every job's error reads: builtins by name
    )
    assert "attempt 2 failed on purpose" in result.errors[1].traceback
    assert result.started_at < result.last_attempted_at
    assert Job.objects.get(id=result.id).attempts == 2  # taskhub counts retries
    # Each attempt is started and finished; the ones that will be retried finish READY.
    wait_for(lambda: len(signal_log(result.id)) == 7, timeout=10, message="seven signals")
    assert [(s["signal"], s["status"], s["attempts"]) for s in signal_log(result.id)] == [
        ("enqueued", "READY", 0),
        ("started", "RUNNING", 1),
        ("finished", "READY", 1),
        ("started", "RUNNING", 2),
        ("finished", "READY", 2),
        ("started", "RUNNING", 3),
        ("finished", "SUCCESSFUL", 3),
    ]


def test_without_retries_a_failure_is_final(worker):
    """TASKS_MAX_RETRIES' default, 0: the first failure ends the task."""
    assert settings.TASKS["default"]["OPTIONS"]["MAX_RETRIES"] == 0
    result = finished(standard_tasks.succeed_on_attempt.enqueue(2))
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1 and len(result.errors) == 1


def test_priority_order(make_worker):
    """Enqueued while no worker runs; one worker process then takes urgent before normal before low."""
    low = standard_tasks.add.using(priority=-10).enqueue(0, 1)
    normal = standard_tasks.add.enqueue(0, 2)
    urgent = standard_tasks.add.using(priority=80).enqueue(0, 3)
    high = standard_tasks.add.using(priority=10).enqueue(0, 4)
    priorities = dict(Job.objects.filter(id__in=[low.id, normal.id, urgent.id, high.id]).values_list("id", "priority"))
    assert [priorities[Job._meta.pk.to_python(r.id)] for r in (low, normal, urgent, high)] == [
        "low",
        "normal",
        "urgent",
        "high",
    ]
    make_worker(concurrency=1)
    results = [finished(result) for result in (urgent, high, normal, low)]
    starts = [result.last_attempted_at for result in results]
    # urgent and high share the high_priority queue (in the order sent); then default, then low_priority.
    assert starts[0] < starts[2] < starts[3] and starts[1] < starts[2], starts


def test_priority_mapping():
    assert [taskhub_priority(p) for p in (-100, -1, 0, 1, 49, 50, 100)] == [
        "low",
        "low",
        "normal",
        "high",
        "high",
        "urgent",
        "urgent",
    ]
    assert [taskhub_priority(p, "high_priority") for p in (-100, 0, 50)] == ["high", "high", "urgent"]
    assert [taskhub_priority(p, "low_priority") for p in (-100, 0, 100)] == ["low", "low", "low"]


def test_queue_names_are_taskhub_queues(worker, settings):
    result = finished(standard_tasks.add.using(queue_name="low_priority", priority=90).enqueue(1, 1))
    job = Job.objects.get(id=result.id)
    assert (job.queue, job.priority) == ("low_priority", "low")
    assert result.task.queue_name == "low_priority" and result.task.priority == 90
    with pytest.raises(InvalidTask, match="maintenance"):
        standard_tasks.add.using(queue_name="maintenance")
    settings.TASKS = {"default": {**settings.TASKS["default"], "QUEUES": []}}  # none listed: taskhub's
    assert standard_tasks.add.get_backend().queues == {"default", "high_priority", "low_priority"}
    with pytest.raises(InvalidTask, match="emails"):
        standard_tasks.add.using(queue_name="emails")
    settings.TASKS = {"default": {**settings.TASKS["default"], "QUEUES": ["default", "emails"]}}
    with pytest.raises(standard_api.InvalidTaskBackend, match="emails"):
        standard_tasks.add.get_backend()


def test_progress_of_a_context_task_is_in_the_job_row(worker, user, user_client):
    with owned_by(user):
        result = standard_tasks.count.enqueue(20, 0.2)
    wait_for(lambda: Job.objects.filter(id=result.id, progress__gt=0).exists(), timeout=20)
    job = Job.objects.get(id=result.id)
    assert job.owner == user and job.progress_meta["message"].startswith("step ")
    detail = user_client.get(f"/api/v1/jobs/{result.id}/").json()
    assert detail["progress"] > 0 and detail["progress_message"].startswith("step ")
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING and result.progress > 0
    assert result.progress_message.startswith("step ")
    finished(result)
    assert result.return_value == {"steps": 20, "attempt": 1} and result.progress == 100


def test_cancel_and_retry_from_the_api_show_in_get_result(worker, user, user_client):
    with owned_by(user):
        result = standard_tasks.count.enqueue(50, 0.2)
    wait_for(lambda: Job.objects.filter(id=result.id, progress__gt=0).exists(), timeout=20)
    response = user_client.post(f"/api/v1/jobs/{result.id}/cancel/")
    assert response.status_code == 200, response.json()
    wait_status(result.id, timeout=15)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.job_status == "revoked"
    [error] = result.errors
    assert error.exception_class is JobCancelled and f"user {user.username}" in error.traceback
    with pytest.raises(ValueError):
        result.return_value  # noqa: B018
    # Retried there too: the same result id runs again as attempt 2.
    response = user_client.post(f"/api/v1/jobs/{result.id}/retry/")
    # The answer is the retry as written, even when the worker starts attempt 2 at once.
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "pending" and response.json()["attempts"] == 1  # the API counts retries
    result.refresh()
    assert result.status in (TaskResultStatus.READY, TaskResultStatus.RUNNING)  # the worker may have it already
    finished(result, timeout=30)
    assert result.return_value == {"steps": 50, "attempt": 2}
    assert result.attempts == 2 and [e.exception_class for e in result.errors] == [JobCancelled]


def test_errors_hide_server_paths_from_owners_who_are_not_staff(worker, staff_user):
    plain = finished(standard_tasks.decline.enqueue("no"))
    with owned_by(staff_user):
        full = finished(standard_tasks.decline.enqueue("no"))
    base = str(settings.BASE_DIR)
    assert base not in plain.errors[0].traceback and 'File "jobs/tests/standard_tasks.py"' in plain.errors[0].traceback
    assert f'File "{base}/jobs/tests/standard_tasks.py"' in full.errors[0].traceback


def test_get_result_of_what_is_not_a_standard_task(db):
    backend = standard_tasks.add.get_backend()
    assert isinstance(backend, TaskhubBackend)
    for result_id in ("not-a-uuid", "6f1c3a52-0000-4000-8000-000000000000", str(JobFactory().id)):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(result_id)


def test_crafted_messages_are_refused_and_never_run(worker, tmp_path, user_client):
    marker = tmp_path / "ran"
    crafted = {
        "os.system": "is not in an installed app",
        "jobs.services.operations.job_delete": "is not a function decorated with @task",
        "jobs.tests.standard_tasks.Declined": "is not a function decorated with @task",
    }
    jobs = {}
    for path in crafted:
        # A row and a message as someone with access to the database and the broker could write them.
        job = JobFactory(celery_task_name=RUNNER_TASK, name=path, args=[], kwargs={"task": path})
        current_app.send_task(
            RUNNER_TASK,
            kwargs={"task": path, "args": [f"touch {marker}"]},
            task_id=str(job.id),
            queue=job.queue,
            headers={"taskhub_attempts": 0},
        )
        jobs[path] = job.id
    for path, reason in crafted.items():
        job = wait_status(jobs[path], timeout=20)
        assert job.status == JobStatus.FAILED and job.started_at is None
        assert job.error.startswith(f"Refused: {path} {reason}"), job.error
    assert not marker.exists()
    # The API refuses them when they are asked for directly, and writes nothing.
    response = user_client.post(
        "/api/v1/jobs/", {"celery_task_name": "django_task", "kwargs": {"task": "os.system"}}, format="json"
    )
    assert_error(response, 400, "invalid_arguments", "kwargs")
    assert Job.objects.count() == len(crafted)


# -- the same rules as every job ---------------------------------------------------------------------


def test_enqueue_obeys_the_owners_quota(db, user):
    """Standard tasks go through the creation service: a user at their active-jobs quota is refused."""
    from taskhub.errors import ApplicationError

    user.max_active_jobs = 1
    user.save()
    with owned_by(user):
        standard_tasks.add.enqueue(1, 2)
        with pytest.raises(ApplicationError, match="at most 1 active") as refused:
            standard_tasks.add.enqueue(3, 4)
    assert (refused.value.code, refused.value.status_code) == ("quota_active_jobs", 429)
    assert Job.objects.filter(owner=user).count() == 1


def test_concurrency_key_gives_the_jobs_enqueued_inside_a_key(db, user):
    """The documented way to pass a concurrency key to the standard API (README, Concurrency keys)."""
    from jobs.tasks.django_backend import concurrency_key
    from taskhub.errors import InvalidInput

    with owned_by(user):
        with concurrency_key("tenant-7", limit=2):
            keyed = standard_tasks.add.enqueue(1, 2)
        plain = standard_tasks.add.enqueue(3, 4)
        with concurrency_key("tenant-7", limit=0), pytest.raises(InvalidInput) as refused:
            standard_tasks.add.enqueue(5, 6)
    assert list(refused.value.fields) == ["concurrency.limit"]
    rows = {str(job.id): (job.concurrency_key, job.concurrency_limit) for job in Job.objects.all()}
    assert rows == {keyed.id: ("tenant-7", 2), plain.id: (None, None)}


def test_a_paused_queue_holds_standard_tasks_until_resumed(worker, staff_user):
    from jobs.queues.services import queue_pause, queue_resume

    queue_pause(queue="default", by=staff_user, source="api")
    result = standard_tasks.add.enqueue(2, 3)
    time.sleep(3)  # a worker is running: the job would have run by now
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert Job.objects.get(id=result.id).dispatched_at is None

    queue_resume(queue="default", by=staff_user, source="api")
    assert finished(result).return_value == 5


@pytest.mark.django_db
def test_a_unique_rule_dedupes_enqueues_by_the_functions_own_arguments(user):
    from jobs.tasks.django_backend import unique
    from taskhub.errors import InvalidInput

    with owned_by(user), unique({"policy": "reject"}):
        first = standard_tasks.add.enqueue(1, 2)
        again = standard_tasks.add.enqueue(1, 2)
        other = standard_tasks.add.enqueue(1, 3)
    assert first.id == again.id != other.id
    assert Job.objects.get(id=first.id).duplicates == 1
    with owned_by(user), unique({"key": "sum", "policy": "nope"}), pytest.raises(InvalidInput) as error:
        standard_tasks.add.enqueue(1, 2)
    assert "unique.policy" in error.value.fields
