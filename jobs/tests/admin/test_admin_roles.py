"""The admin's roles: the "viewer" and "operator" groups made by accounts' data migration, and
what each may do in the job admin."""

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs.models import Job, JobEventKind, JobStatus
from taskhub.testing.admin import (
    CHANGELIST,
    PROGRESS,
    change_url,
    client_for,
    ensure_roles,
    make_job,
    member_of,
    run_action,
)

QUEUE_VIEWING = {"jobs.view_queuecontrol", "jobs.view_ratelimit", "jobs.view_queuecontrolchange"}
VIEWER_PERMISSIONS = {"jobs.view_job", "jobs.view_jobevent", *QUEUE_VIEWING}
OPERATOR_PERMISSIONS = {
    "jobs.view_job",
    "jobs.add_job",
    "jobs.change_job",
    "jobs.delete_job",
    "jobs.view_jobevent",
    "jobs.change_queuecontrol",
    "jobs.submit_urgent",  # urgent priority is an operator's right (accounts 0005)
    *QUEUE_VIEWING,
}


def permissions_of(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_the_roles_migration_makes_the_groups_and_can_be_reversed(db):
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    assert not Group.objects.filter(name__in=["viewer", "operator"]).exists()

    # As on a fresh database: the job permissions do not exist yet when the migration runs.
    Permission.objects.filter(content_type__app_label="jobs").delete()
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0005_user_max_running")])

    assert permissions_of(Group.objects.get(name="viewer")) == VIEWER_PERMISSIONS
    assert permissions_of(Group.objects.get(name="operator")) == OPERATOR_PERMISSIONS


def test_the_roles_can_be_made_again(roles):
    """Running the migration's code again (a group renamed back, permissions added) changes nothing."""
    again = ensure_roles()

    assert set(again) == {"viewer", "operator"}
    assert permissions_of(again["viewer"]) == VIEWER_PERMISSIONS
    assert permissions_of(again["operator"]) == OPERATOR_PERMISSIONS


def test_a_viewer_sees_jobs_but_no_action_or_button(roles, owner):
    viewer = member_of("viewer")
    client = client_for(viewer)
    pending = make_job(owner, JobStatus.PENDING, name="waiting")
    failed = make_job(owner, JobStatus.FAILED, name="broken")

    response = client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["action_form"] is None
    assert "/admin/jobs/job/add/" not in html and "/admin/jobs/job/matching/" not in html
    for job in (pending, failed):
        page = client.get(change_url(job)).content.decode()
        assert "data-job-operation" not in page and "/delete/" not in page
    assert client.get(PROGRESS, {"ids": str(pending.pk), "detail": "1"}).json()["jobs"][0]["can_cancel"] is False
    assert client.get("/admin/jobs/jobevent/").status_code == 200

    # Direct requests are refused and change nothing.
    assert client.post(f"/admin/jobs/job/{pending.pk}/cancel/").status_code == 403
    assert client.post(f"/admin/jobs/job/{failed.pk}/retry/").status_code == 403
    assert client.post(f"/admin/jobs/job/{failed.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/jobs/job/add/").status_code == 403
    assert client.get("/admin/jobs/job/matching/cancel/").status_code == 403
    assert client.post("/admin/jobs/job/matching/cancel/", {"post": "yes"}).status_code == 403
    assert run_action(client, "cancel", [pending]).status_code == 200  # no actions: just the list
    assert {job.status for job in Job.objects.all()} == {JobStatus.PENDING, JobStatus.FAILED}
    assert not pending.events.exclude(kind=JobEventKind.CREATED).exists()


def test_an_operator_submits_cancels_retries_and_deletes(roles, owner):
    operator = member_of("operator")
    client = client_for(operator)
    pending = make_job(owner, JobStatus.PENDING, name="waiting")
    failed = make_job(owner, JobStatus.FAILED, name="broken")
    done = make_job(owner, JobStatus.SUCCEEDED, name="done")

    response = client.get(CHANGELIST)
    choices = [value for value, _ in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "cancel", "retry", "delete_selected"]
    assert client.get("/admin/jobs/job/add/").status_code == 200

    assert client.post(f"/admin/jobs/job/{pending.pk}/cancel/").status_code == 302
    assert client.post(f"/admin/jobs/job/{failed.pk}/retry/").status_code == 302
    assert client.post(f"/admin/jobs/job/{done.pk}/delete/", {"post": "yes"}).status_code == 302

    pending.refresh_from_db()
    failed.refresh_from_db()
    assert (pending.status, pending.cancelled_by) == (JobStatus.REVOKED, operator)
    assert failed.status == JobStatus.PENDING and failed.attempts == 1
    assert not Job.objects.filter(pk=done.pk).exists()


def test_an_operator_is_no_superuser_and_cannot_manage_users(roles):
    client = client_for(member_of("operator"))

    assert client.get("/admin/accounts/user/").status_code == 403
    assert client.get("/admin/auth/group/").status_code == 403


@pytest.mark.parametrize("group", ["viewer", "operator"])
def test_role_members_reach_the_admin_index(roles, group):
    html = client_for(member_of(group)).get("/admin/").content.decode()

    assert "/admin/jobs/job/" in html
    assert ("/admin/jobs/job/add/" in html) is (group == "operator")
    assert not LogEntry.objects.filter(action_flag=ADDITION).exists()


def test_an_operator_pauses_and_resumes_a_queue_and_a_viewer_only_sees_it(roles):
    from rest_framework.test import APIClient

    clients = {}
    for role in ("operator", "viewer"):
        clients[role] = APIClient()
        clients[role].force_authenticate(member_of(role))
    assert clients["viewer"].get("/api/v1/queues/").status_code == 200
    assert clients["viewer"].post("/api/v1/queues/default/pause/").status_code == 403
    assert clients["operator"].post("/api/v1/queues/default/pause/").status_code == 200
    assert clients["operator"].post("/api/v1/queues/default/resume/").status_code == 200
