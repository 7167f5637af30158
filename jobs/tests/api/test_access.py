"""Who may see and act on a job through the API: other users' jobs are not found, anonymous requests
are a 401, and staff need the job permissions to see (jobs.view_job) and act on other users' jobs."""

import uuid

import pytest
from django.contrib.auth.models import Permission

from conftest import assert_error
from jobs.models import Job, JobEvent
from jobs.tests.factories import PREFIXES, SPEC_BODY, JobFactory, snapshot

pytestmark = pytest.mark.django_db


# --- other users' jobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("method", "suffix", "status"),
    [
        ("get", "", "pending"),
        ("get", "events/", "pending"),
        ("post", "cancel/", "pending"),
        ("post", "cancel", "running"),
        ("post", "retry/", "failed"),
        ("delete", "", "succeeded"),
    ],
)
def test_another_users_job_is_not_found(
    other_user, user_client, staff_user, staff_client, prefix, method, suffix, status
):
    # Staff acting on someone else's job also need the job permissions (see the tests at the end).
    staff_user.user_permissions.add(*Permission.objects.filter(codename__in=["change_job", "delete_job"]))
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)
    response = getattr(user_client, method)(f"{prefix}{job.id}/{suffix}")
    assert_error(response, 404, code="not_found")
    assert snapshot(job) == before
    assert not JobEvent.objects.filter(job=job).exists()
    # Staff may see and act on it.
    assert getattr(staff_client, method)(f"{prefix}{job.id}/{suffix}").status_code in (
        200,
        204,
    )


# --- authentication ---------------------------------------------------------------------------


JOB_ID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/jobs/"),
        ("post", "/api/v1/jobs/"),
        ("post", "/api/v1/jobs/bulk/"),
        ("get", f"/api/v1/jobs/{JOB_ID}/"),
        ("delete", f"/api/v1/jobs/{JOB_ID}/"),
        ("post", f"/api/v1/jobs/{JOB_ID}/cancel/"),
        ("post", f"/api/v1/jobs/{JOB_ID}/retry/"),
        ("get", f"/api/v1/jobs/{JOB_ID}/events/"),
        ("get", "/api/v1/tasks/"),
        ("post", "/api/v1/tasks/"),
        ("get", f"/api/v1/tasks/{JOB_ID}"),
        ("post", f"/api/v1/tasks/{JOB_ID}/cancel"),
        ("get", "/api/v1/task-catalog/"),
    ],
)
def test_unauthenticated_requests_are_refused(api_client, user, nothing_written, method, path):
    job = JobFactory(owner=user, id=uuid.UUID(JOB_ID), failed=True)
    before = snapshot(job)
    with nothing_written():
        response = getattr(api_client, method)(path, SPEC_BODY if method == "post" else None, format="json")
    assert_error(response, 401, code="not_authenticated")
    assert snapshot(job) == before


# --- acting on other users' jobs needs the job permissions -------------------------------------


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))


OPERATIONS = [
    ("post", "cancel/", "pending", "jobs.change_job", 200),
    ("post", "cancel/", "running", "jobs.change_job", 200),
    ("post", "retry/", "failed", "jobs.change_job", 200),
    ("delete", "", "succeeded", "jobs.delete_job", 204),
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_view_only_staff_cannot_act_on_other_users_jobs(
    other_user, staff_user, staff_client, nothing_written, prefix, method, suffix, status, permission, success
):
    """Staff see every job, but cancel, retry and delete someone else's job only with the
    permission the admin asks for too: "change" to cancel or retry, "delete" to delete."""
    grant(staff_user, "view_job")
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)

    with nothing_written():
        body = assert_error(getattr(staff_client, method)(f"{prefix}{job.id}/{suffix}"), 403, code="permission_denied")

    assert permission in body["message"]
    assert snapshot(job) == before
    # The detail stays visible.
    assert staff_client.get(f"{prefix}{job.id}/").status_code == 200


@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_staff_with_the_permission_act_on_other_users_jobs(
    other_user, staff_user, staff_client, method, suffix, status, permission, success
):
    grant(staff_user, "view_job", permission.split(".")[1])  # without view_job, another's job is not found
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))

    assert getattr(staff_client, method)(f"/api/v1/jobs/{job.id}/{suffix}").status_code == success


def test_the_change_permission_does_not_allow_deleting(other_user, staff_user, staff_client):
    grant(staff_user, "view_job", "change_job")
    job = JobFactory(owner=other_user, succeeded=True)

    body = assert_error(staff_client.delete(f"/api/v1/jobs/{job.id}/"), 403, code="permission_denied")

    assert "jobs.delete_job" in body["message"]
    assert Job.objects.filter(id=job.id).exists()


@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_owners_act_on_their_own_jobs_without_any_permission(
    staff_user, staff_client, method, suffix, status, permission, success
):
    job = JobFactory(owner=staff_user, **({status: True} if status != "pending" else {}))

    assert not staff_user.get_all_permissions()
    assert getattr(staff_client, method)(f"/api/v1/jobs/{job.id}/{suffix}").status_code == success


@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_permissions_do_not_let_non_staff_see_other_users_jobs(
    user, other_user, user_client, method, suffix, status, permission, success
):
    grant(user, "view_job", "change_job", "delete_job")
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)

    assert_error(getattr(user_client, method)(f"/api/v1/jobs/{job.id}/{suffix}"), 404, code="not_found")

    assert snapshot(job) == before


# --- staff without permissions -------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("suffix", ["", "events/"])
def test_staff_without_the_view_permission_see_only_their_own_jobs(
    other_user, staff_user, staff_client, prefix, suffix
):
    """The admin shows jobs only with jobs.view_job; the API shows another user's job on the same terms."""
    theirs = JobFactory(owner=other_user)
    mine = JobFactory(owner=staff_user)

    assert {job["id"] for job in staff_client.get(prefix).json()["results"]} == {str(mine.id)}
    assert_error(staff_client.get(f"{prefix}{theirs.id}/{suffix}"), 404, code="not_found")
    assert staff_client.get(f"{prefix}{mine.id}/{suffix}").status_code == 200

    grant(staff_user, "view_job")
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)  # permissions are cached per instance
    staff_client.force_authenticate(user=staff_user)
    assert {job["id"] for job in staff_client.get(prefix).json()["results"]} == {str(mine.id), str(theirs.id)}
    assert staff_client.get(f"{prefix}{theirs.id}/{suffix}").status_code == 200
