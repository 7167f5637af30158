"""GET /api/v1/workflows/{id}/stream/: server-sent events of a workflow's steps, as the job streams."""

import pytest

from conftest import assert_error
from jobs.models import Job
from jobs.services.execution import job_start, job_succeed
from jobs.tests.streams.test_stream import bearer, get, states, stream
from jobs.workflows import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)  # the streams read on their own threads

STEPS = [
    {"id": "fetch", "task": "long_running_task", "kwargs": {"seconds": 0}},
    {"id": "merge", "task": "gather", "after": ["fetch"]},
]


def test_the_stream_shows_each_step_then_its_changes(user):
    workflow = workflow_create(owner=user, name="live", steps=STEPS)
    fetch = Job.objects.get(workflow=workflow, workflow_step="fetch")

    def run_fetch():
        started = job_start(job_id=fetch.id, worker="w:1")
        job_succeed(job_id=fetch.id, attempts=started.attempts, result=1)

    def fetch_done(events):
        return any(s["id"] == str(fetch.id) and s["status"] == "succeeded" for s in states(events))

    events = stream(f"/api/v1/workflows/{workflow.id}/stream/", act=run_fetch, until=fetch_done, **bearer(user))
    seen = {s["id"] for s in states(events)}
    assert seen == {str(job.id) for job in Job.objects.filter(workflow=workflow)}


def test_another_users_or_an_unknown_workflow_is_404(user, other_user):
    workflow = workflow_create(owner=other_user, name="theirs", steps=STEPS)
    assert_error(get(f"/api/v1/workflows/{workflow.id}/stream/", **bearer(user)), 404)
    assert_error(get("/api/v1/workflows/00000000-0000-0000-0000-000000000000/stream/", **bearer(user)), 404)
    assert_error(get(f"/api/v1/workflows/{workflow.id}/stream/"), 401)
