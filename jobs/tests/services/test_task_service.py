"""The original specification's task_service, called exactly as its examples do."""

import pytest

from jobs.models import Job
from jobs.services.task_service import task_service
from jobs.tests.factories import LONG_RUNNING_TASK, make

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


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
