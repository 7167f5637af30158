"""Cancel, retry and delete through the API: what each does to a job in each state, and the conflicts."""

import pytest

from conftest import assert_error
from jobs.models import Job, JobEvent
from jobs.tests.factories import PREFIXES, SPEC_BODY, JobFactory, snapshot

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("prefix", PREFIXES)
def test_cancel_a_pending_job(user, user_client, prefix):
    job = JobFactory(owner=user)
    response = user_client.post(f"{prefix}{job.id}/cancel/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["cancelled_by"]) == ("revoked", user.username)
    assert body["cancel_requested_at"] and body["finished_at"]
    assert Job.objects.get(id=job.id).status == "revoked"


def test_cancel_with_the_spec_path_without_trailing_slash(user, user_client):
    created = user_client.post("/api/v1/tasks/", SPEC_BODY, format="json").json()
    response = user_client.post(f"/api/v1/tasks/{created['id']}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "revoked"
    assert user_client.get(f"/api/v1/tasks/{created['id']}").json()["status"] == "revoked"


def test_cancel_a_running_job_requests_a_stop(user, user_client):
    job = JobFactory(owner=user, running=True)
    response = user_client.post(f"/api/v1/jobs/{job.id}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running"
    assert body["cancel_requested_at"] is not None
    assert body["finished_at"] is None
    again = assert_error(user_client.post(f"/api/v1/jobs/{job.id}/cancel/"), 409, code="cancel_pending")
    assert "already being cancelled" in again["message"]
    assert JobEvent.objects.filter(job=job).count() == 1


@pytest.mark.parametrize("status", ["succeeded", "failed", "revoked"])
def test_cancel_a_finished_job_is_a_conflict(user, user_client, status):
    job = JobFactory(owner=user, **{status: True})
    before = snapshot(job)
    body = assert_error(user_client.post(f"/api/v1/jobs/{job.id}/cancel/"), 409, code="invalid_state")
    assert status in body["message"]
    assert snapshot(job) == before


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("status", ["failed", "revoked"])
def test_retry_a_failed_or_revoked_job(
    user, user_client, prefix, status, published, django_capture_on_commit_callbacks
):
    job = JobFactory(owner=user, **{status: True})
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(f"{prefix}{job.id}/retry/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"], body["attempts"], body["error"]) == (
        str(job.id),
        "pending",
        1,
        "",
    )
    assert [m["id"] for m in published] == [str(job.id)]
    events = user_client.get(f"{prefix}{job.id}/events/").json()
    # The lines its row derived (created; started for the failed one) are written before the retry clears them.
    derived = {"failed": ["started", "created"], "revoked": ["created"]}[status]
    assert [e["kind"] for e in events] == [*derived, "retried"]
    assert events[-1]["data"]["previous_error"] == job.error


@pytest.mark.parametrize("status", ["pending", "running", "succeeded"])
def test_retry_of_a_job_that_did_not_fail_is_a_conflict(user, user_client, status, nothing_written):
    job = JobFactory(owner=user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)
    with nothing_written():
        assert_error(user_client.post(f"/api/v1/jobs/{job.id}/retry/"), 409, code="invalid_state")
    assert snapshot(job) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_delete_a_finished_job(user, user_client, prefix):
    job = JobFactory(owner=user, succeeded=True)
    JobEvent.objects.create(job=job, kind="created")
    response = user_client.delete(f"{prefix}{job.id}/")
    assert response.status_code == 204
    assert not Job.objects.filter(id=job.id).exists()
    assert not JobEvent.objects.filter(job_id=job.id).exists()
    assert_error(user_client.get(f"{prefix}{job.id}/"), 404)
    assert_error(user_client.delete(f"{prefix}{job.id}/"), 404)


@pytest.mark.parametrize("status", ["pending", "running"])
def test_delete_an_active_job_says_to_cancel_first(user, user_client, status):
    job = JobFactory(owner=user, **({status: True} if status != "pending" else {}))
    body = assert_error(user_client.delete(f"/api/v1/jobs/{job.id}"), 409, code="job_active")
    assert "cancel it first" in body["message"]
    assert Job.objects.filter(id=job.id).exists()
