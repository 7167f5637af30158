"""A workflow's stream over real HTTP: the ASGI server as the Procfile starts it (uvicorn), a real worker
running the steps, the workflow created through the API. The stream shows each step's changes and the
workflow's own status and progress, in order, and closes by itself once the workflow succeeded."""

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from jobs.models import Job
from taskhub.testing import AsgiServer, EventStream, child_database_url

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]


@pytest.fixture
def server(broker_url, transactional_db):
    server = AsgiServer(env={"DATABASE_URL": child_database_url(), "CELERY_BROKER_URL": broker_url}).start()
    yield server
    server.stop()


def test_a_workflow_streams_its_steps_and_its_own_progress_then_closes(worker, server):
    token = str(AccessToken.for_user(UserFactory()))
    steps = [
        {"id": "fetch", "task": "long_running_task", "kwargs": {"seconds": 2}},
        {"id": "a", "task": "long_running_task", "kwargs": {"seconds": 1}, "after": ["fetch"]},
        {"id": "b", "task": "long_running_task", "kwargs": {"seconds": 1}, "after": ["fetch"]},
        {"id": "merge", "task": "gather", "after": ["a", "b"]},
    ]
    status, body = server.request("POST", "/api/v1/workflows/", token=token, body={"name": "live", "steps": steps})
    assert status == 201, body
    workflow_id = body["id"]
    jobs = {step["job"]: step["id"] for step in body["steps"]}

    stream = EventStream(server.port, f"/api/v1/workflows/{workflow_id}/stream/", token=token, timeout=60)
    assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
    events = [event for event in stream.events() if event.kind != "comment"]  # until the server closes it
    stream.close()

    flows = [e.data for e in events if e.kind == "workflow"]
    assert flows[0]["status"] in ("pending", "running") and flows[-1]["status"] == "succeeded"
    assert "running" in [f["status"] for f in flows]
    progress = [f["progress"] for f in flows]
    assert progress == sorted(progress) and progress[-1] == 100 and len(set(progress)) >= 3, progress
    assert flows[-1]["steps_succeeded"] == 4 and flows[-1]["finished_at"]
    assert all(e.id for e in events if e.kind == "workflow")
    # Every step's changes, each step seen succeeding, before the workflow's last state.
    finished = [i for i, e in enumerate(events) if e.kind == "state" and e.data["status"] == "succeeded"]
    assert {jobs[events[i].data["id"]] for i in finished} == {"fetch", "a", "b", "merge"}
    last_flow = max(i for i, e in enumerate(events) if e.kind == "workflow")
    assert max(finished) < last_flow
    assert any(e.kind == "state" and e.data["status"] == "running" and e.data["progress"] > 0 for e in events)
    assert events[-1].kind == "end" and events[-1].data == {"id": workflow_id, "status": "succeeded"}
    assert set(Job.objects.filter(workflow_id=workflow_id).values_list("status", flat=True)) == {"succeeded"}
