"""Edit and retry: POST /api/v1/jobs/{id}/retry/ with new args, kwargs or priority.

The new values are checked against the task's schema exactly as a create is (400 naming the field,
nothing written); the retry's timeline line says who changed what (before and after of each changed
key). Owners retry their own jobs; operators (``jobs.change_job``) anyone's; a viewer gets 403.
"""

import pytest
from django.contrib.auth.models import Permission

from conftest import assert_error
from jobs.models import Job, JobEvent, JobStatus
from jobs.tests.factories import JobFactory, snapshot
from taskhub.testing.workers import wait_status

pytestmark = pytest.mark.django_db


def _retried_event(job) -> dict:
    event = JobEvent.objects.filter(job=job, kind="retried").order_by("-at", "-id").first()
    assert event is not None
    return {"actor": event.actor_id, "message": event.message, "data": event.data}


def test_retry_with_new_kwargs_records_the_change_and_its_author(user, user_client, published):
    job = JobFactory(owner=user, failed=True, args=[], kwargs={"seconds": 3600})
    response = user_client.post(f"/api/v1/jobs/{job.id}/retry/", {"kwargs": {"seconds": 1}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["kwargs"], body["args"], body["attempts"]) == ("pending", {"seconds": 1}, [], 1)
    line = _retried_event(job)
    assert line["actor"] == user.pk
    assert line["data"]["changes"] == {"kwargs": {"before": {"seconds": 3600}, "after": {"seconds": 1}}}
    assert "changed kwargs" in line["message"], line["message"]
    events = user_client.get(f"/api/v1/jobs/{job.id}/events/").json()
    assert events[-1]["actor"] == user.username and events[-1]["data"]["changes"]["kwargs"]["after"] == {"seconds": 1}


def test_retry_with_a_new_priority_moves_the_job_to_its_queue(user, user_client, published):
    job = JobFactory(owner=user, failed=True, priority="normal")
    response = user_client.post(f"/api/v1/jobs/{job.id}/retry/", {"priority": "high"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["priority"], response.json()["queue"]) == ("high", "high_priority")
    assert _retried_event(job)["data"]["changes"] == {"priority": {"before": "normal", "after": "high"}}


def test_retry_with_the_same_values_records_no_change(user, user_client, published):
    job = JobFactory(owner=user, failed=True, args=[5], kwargs={})
    response = user_client.post(f"/api/v1/jobs/{job.id}/retry/", {"args": [5], "kwargs": {}}, format="json")
    assert response.status_code == 200, response.content
    assert "changes" not in _retried_event(job)["data"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kwargs": {"seconds": "many"}}, "kwargs"),  # the task's schema: an integer
        ({"kwargs": {"seconds": 99999999}}, "kwargs"),  # out of the task's bounds
        ({"kwargs": {"no_such_parameter": 1}}, "kwargs"),
        ({"kwargs": []}, "kwargs"),
        ({"args": {"a": 1}}, "args"),
        ({"priority": "soon"}, "priority"),
        ({"status": "pending"}, "status"),  # not a field of the retry
        ({"celery_task_name": "flaky_task"}, "celery_task_name"),
    ],
)
def test_bad_new_values_are_a_400_naming_the_field_and_nothing_changes(user, user_client, body, field, nothing_written):
    job = JobFactory(owner=user, failed=True, args=[], kwargs={"seconds": 5})
    before = snapshot(job)
    with nothing_written():
        assert_error(user_client.post(f"/api/v1/jobs/{job.id}/retry/", body, format="json"), 400, field=field)
    assert snapshot(job) == before


def test_urgent_needs_its_permission_on_a_retry_too(user, user_client, nothing_written):
    job = JobFactory(owner=user, failed=True)
    with nothing_written():
        assert_error(
            user_client.post(f"/api/v1/jobs/{job.id}/retry/", {"priority": "urgent"}, format="json"),
            403,
            field="priority",
        )


def test_a_viewer_may_not_retry_another_users_job(staff_viewer, staff_client, user, nothing_written):
    job = JobFactory(owner=user, failed=True)
    with nothing_written():
        body = assert_error(
            staff_client.post(f"/api/v1/jobs/{job.id}/retry/", {"kwargs": {"seconds": 1}}, format="json"), 403
        )
    assert "jobs.change_job" in body["message"]
    assert Job.objects.get(id=job.id).status == JobStatus.FAILED


def test_an_operator_edits_and_retries_another_users_job(staff_viewer, staff_client, user, published):
    staff_viewer.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="change_job"))
    job = JobFactory(owner=user, failed=True, args=[], kwargs={"seconds": 3600})
    response = staff_client.post(f"/api/v1/jobs/{job.id}/retry/", {"kwargs": {"seconds": 2}}, format="json")
    assert response.status_code == 200, response.content
    line = _retried_event(job)
    assert line["actor"] == staff_viewer.pk
    assert line["data"]["changes"]["kwargs"] == {"before": {"seconds": 3600}, "after": {"seconds": 2}}
    assert Job.objects.get(id=job.id).owner_id == user.pk


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_a_failed_job_retried_with_corrected_kwargs_succeeds(worker, user_client):
    created = user_client.post(
        "/api/v1/jobs/",
        {"celery_task_name": "flaky_task", "kwargs": {"fail_times": 5}, "max_retries": 0},
        format="json",
    )
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert wait_status(job_id).status == JobStatus.FAILED

    response = user_client.post(f"/api/v1/jobs/{job_id}/retry/", {"kwargs": {"fail_times": 0}}, format="json")
    assert response.status_code == 200, response.content
    job = wait_status(job_id)
    assert (job.status, job.kwargs, job.result) == (JobStatus.SUCCEEDED, {"fail_times": 0}, {"attempt": 2})
