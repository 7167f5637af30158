"""The workflows' admin: the list, a workflow's page with its DAG drawn (inline SVG, coloured by
status, each step linked to its job's page), the job page's link back, Cancel and Retry actions."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.tests.factories import UserFactory
from jobs.models import Job, Workflow
from jobs.services.execution import job_start, job_succeed
from jobs.workflows import workflow_create

pytestmark = pytest.mark.django_db

STEPS = [
    {"id": "fetch", "task": "long_running_task", "kwargs": {"seconds": 0}},
    {"id": "a:b", "task": "long_running_task", "kwargs": {"seconds": 0}, "after": ["fetch"]},
    {"id": "merge", "task": "gather", "after": ["a:b"]},
]


@pytest.fixture
def operator():
    user = UserFactory(is_staff=True)
    for codename in ("view_job", "change_job", "view_workflow"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_workflow_page_draws_the_dag_coloured_by_status_and_the_job_page_links_to_it(operator, user):
    workflow = workflow_create(owner=user, name="nightly", steps=STEPS)
    fetch = Job.objects.get(workflow=workflow, workflow_step="fetch")
    started = job_start(job_id=fetch.id, worker="w:1")
    job_succeed(job_id=fetch.id, attempts=started.attempts, result=1)
    assert operator.get("/admin/jobs/workflow/").status_code == 200
    page = operator.get(f"/admin/jobs/workflow/{workflow.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and html.count("<rect") == 3
    assert 'data-step="fetch" data-status="succeeded"' in html
    assert 'data-step="a:b" data-status="pending"' in html  # released
    assert 'data-step="merge" data-status="waiting"' in html
    assert f"/admin/jobs/job/{fetch.id}/change/" in html
    job_page = operator.get(f"/admin/jobs/job/{fetch.id}/change/").content.decode()
    assert f"/admin/jobs/workflow/{workflow.id}/change/" in job_page


def test_the_cancel_and_retry_actions(operator, user):
    workflow = workflow_create(owner=user, name="nightly", steps=STEPS)
    url = "/admin/jobs/workflow/"
    response = operator.post(url, {"action": "cancel", "_selected_action": [str(workflow.id)]})
    assert response.status_code == 302
    assert Workflow.objects.get(id=workflow.id).status == "cancelled"
    operator.post(url, {"action": "retry", "_selected_action": [str(workflow.id)]})
    assert Workflow.objects.get(id=workflow.id).status == "pending"


def test_the_live_view_answers_the_pages_changing_parts(operator, user):
    workflow = workflow_create(owner=user, name="nightly", steps=STEPS)
    fetch = Job.objects.get(workflow=workflow, workflow_step="fetch")
    url = f"/admin/jobs/workflow/{workflow.id}/live/"
    before = operator.get(url).json()
    assert (before["status"], before["progress"], before["active"]) == ("pending", 0, True)
    assert 'data-step="fetch" data-status="pending"' in before["dag"]
    assert before["fields"]["progress_percent"] == "0% (0/3)"
    started = job_start(job_id=fetch.id, worker="w:1")
    job_succeed(job_id=fetch.id, attempts=started.attempts, result=1)
    after = operator.get(url).json()
    assert 'data-step="fetch" data-status="succeeded"' in after["dag"]
    assert after["fields"] == {
        "status": "Running",
        "progress_percent": "33% (1/3)",
        "counts": "1 succeeded, 0 failed, 0 cancelled, of 3",
        "finished_at": "-",
    }
    page = operator.get(f"/admin/jobs/workflow/{workflow.id}/change/").content.decode()
    assert f'data-live-url="{url}"' in page and 'data-active="true"' in page
    assert "jobs/admin/workflow_live.js" in page


def test_the_live_view_refuses_in_json(operator, user, other_user):
    workflow = workflow_create(owner=other_user, name="theirs", steps=STEPS)
    url = f"/admin/jobs/workflow/{workflow.id}/live/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 403 and anonymous.json()["code"] == "permission_denied"
    not_staff = Client()
    not_staff.force_login(user)
    assert not_staff.get(url).status_code == 403
    # Staff who see only their own workflows: another user's is not found, as on its page.
    own_only = UserFactory(is_staff=True)
    own_only.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_workflow"))
    client = Client()
    client.force_login(own_only)
    assert client.get(url).status_code == 404 and client.get(url).json()["code"] == "not_found"
    unknown = operator.get("/admin/jobs/workflow/00000000-0000-0000-0000-000000000000/live/")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    # Not a UUID: not the live view; the admin's own catch-all sends it to a change page that does not exist.
    assert operator.get("/admin/jobs/workflow/not-a-uuid/live/").status_code == 302
