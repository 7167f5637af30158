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
