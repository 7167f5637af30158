"""GET /api/v1/stats/ counts workflows by status (as /metrics' ``taskhub_workflows{status}`` gauge),
over the workflows the caller may see: their own, or everyone's for staff with jobs.view_job."""

import pytest

from jobs.models import Job
from jobs.services.execution import job_start, job_succeed
from jobs.tests.observability.test_metrics import scrape, value
from jobs.workflows import workflow_cancel, workflow_create

pytestmark = pytest.mark.django_db

LONG = "long_running_task"
STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


def steps(*spec):
    return [{"id": step_id, "task": LONG, "kwargs": {"seconds": 0}, "after": after} for step_id, after in spec]


def test_stats_count_the_callers_workflows_by_status(user, other_user, user_client, staff_viewer, staff_client):
    done = workflow_create(owner=user, name="done", steps=steps(("a", [])))
    job = Job.objects.get(workflow=done)
    started = job_start(job_id=job.id, worker="w:1")
    job_succeed(job_id=job.id, attempts=started.attempts, result=1)
    workflow_create(owner=user, name="waiting", steps=steps(("a", []), ("b", ["a"])))
    theirs = workflow_create(owner=other_user, name="theirs", steps=steps(("a", []), ("b", ["a"])))
    workflow_cancel(user=other_user, workflow_id=theirs.id)

    own = user_client.get("/api/v1/stats/").json()["workflows"]
    assert own == {"pending": 1, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0, "steps_waiting": 1}

    every = staff_client.get("/api/v1/stats/").json()["workflows"]
    assert every == {"pending": 1, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 1, "steps_waiting": 1}
    # The same figures as /metrics' gauge.
    samples = scrape(_session(staff_viewer))
    assert {status: every[status] for status in STATUSES} == {
        status: value(samples, "taskhub_workflows", status=status) for status in STATUSES
    }


def test_stats_with_no_workflow_count_zeros(user_client):
    assert user_client.get("/api/v1/stats/").json()["workflows"] == {
        **{status: 0 for status in STATUSES},
        "steps_waiting": 0,
    }


def test_the_openapi_document_describes_the_workflow_counts(user_client):
    document = user_client.get("/api/schema/", {"format": "json"}).json()
    stats = document["components"]["schemas"]["Stats"]
    assert "workflows" in stats["required"]
    counts = document["components"]["schemas"]["StatsWorkflows"]["properties"]
    assert set(counts) == {*STATUSES, "steps_waiting"}


def _session(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
