"""GET /api/v1/workflows/{id}/stream/: server-sent events of a workflow's steps, as the job streams."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient

from conftest import assert_error
from jobs import live
from jobs.models import Job
from jobs.services.execution import job_start, job_succeed
from jobs.tests.streams.test_stream import bearer, get, parse, states, stream
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


@pytest.fixture(params=["redis", "polling"])
def mode(request, settings):
    """Both ways a change reaches a stream: Redis pub/sub (the suite's broker) and polling the rows."""
    if request.param == "polling":
        settings.JOB_EVENTS_REDIS_URL = ""
    return request.param


def workflow_events(events):
    return [e["data"] for e in events if e.get("event") == "workflow"]


def stream_acting_after_the_workflow(path: str, *, act, until, timeout: float = 20.0, **headers):
    """As ``stream``, acting once the stream sent the workflow's first state (after its steps')."""
    acted = False

    def act_once():
        nonlocal acted
        acted = True
        act()

    async def run():
        response = await AsyncClient().get(path, **headers)
        assert response.status_code == 200, response.content
        chunks = []
        content = aiter(response.streaming_content)
        try:
            async with asyncio.timeout(timeout):
                async for chunk in content:
                    chunks.append(chunk)
                    events = parse(chunks)
                    if not acted and workflow_events(events):
                        await sync_to_async(act_once)()
                    if until(events):
                        break
        finally:
            await content.aclose()
        return parse(chunks)

    return async_to_sync(run)()


def test_the_stream_shows_the_workflows_own_status_and_progress_then_ends(user, mode):
    workflow = workflow_create(owner=user, name="live", steps=STEPS)
    rows = {job.workflow_step: job for job in Job.objects.filter(workflow=workflow)}

    def run_both():
        for name in ("fetch", "merge"):
            started = job_start(job_id=rows[name].id, worker="w:1")
            job_succeed(job_id=rows[name].id, attempts=started.attempts, result={"step": name})

    events = stream_acting_after_the_workflow(
        f"/api/v1/workflows/{workflow.id}/stream/",
        act=run_both,
        until=lambda events: any(e.get("event") == "end" for e in events),
        timeout=20,
        **bearer(user),
    )
    flows = workflow_events(events)
    assert flows[0]["id"] == str(workflow.id) and flows[0]["name"] == "live"
    assert (flows[0]["status"], flows[0]["progress"], flows[0]["steps_total"]) == ("pending", 0, 2)
    assert (flows[-1]["status"], flows[-1]["progress"], flows[-1]["steps_succeeded"]) == ("succeeded", 100, 2)
    assert flows[-1]["finished_at"]
    progress = [flow["progress"] for flow in flows]
    assert progress == sorted(progress)
    assert all(e.get("id") for e in events if e.get("event") == "workflow")
    # The workflow's last change comes after its last step's, then the end, then nothing.
    kinds = [e.get("event") for e in events if "event" in e]
    last_step = max(i for i, e in enumerate(events) if e.get("event") == "state" and e["data"]["status"] == "succeeded")
    assert (
        events.index(next(e for e in events if e.get("event") == "workflow" and e["data"]["status"] == "succeeded"))
        > last_step
    )
    assert kinds[-1] == "end" and events[-1]["data"] == {"id": str(workflow.id), "status": "succeeded"}


def test_a_step_whose_change_the_stream_missed_is_shown_before_the_workflows_end(user, monkeypatch):
    """The stream ends when it reads its workflow finished, which may be before the message of the
    step that finished it (or of any step) reached it: the steps it last showed unfinished are read
    again first. Here step "b" finishes without its message (as if it were still on its way), then
    "a" finishes the workflow with its own."""
    workflow = workflow_create(
        owner=user,
        name="two",
        steps=[{"id": name, "task": "long_running_task", "kwargs": {"seconds": 0}} for name in ("a", "b")],
    )
    rows = {job.workflow_step: job for job in Job.objects.filter(workflow=workflow)}

    def finish(name):
        started = job_start(job_id=rows[name].id, worker="w:1")
        job_succeed(job_id=rows[name].id, attempts=started.attempts, result=name)

    def run_both():
        with monkeypatch.context() as quiet:
            quiet.setattr(live._publisher, "publish", lambda job_ids: None)
            finish("b")
        finish("a")

    events = stream_acting_after_the_workflow(
        f"/api/v1/workflows/{workflow.id}/stream/",
        act=run_both,
        until=lambda events: any(e.get("event") == "end" for e in events),
        timeout=20,
        **bearer(user),
    )
    end = next(i for i, e in enumerate(events) if e.get("event") == "end")
    shown = {
        e["data"]["id"]: i
        for i, e in enumerate(events)
        if e.get("event") == "state" and e["data"]["status"] == "succeeded"
    }
    assert set(shown) == {str(rows["a"].id), str(rows["b"].id)}, events
    assert max(shown.values()) < end


def test_a_finished_workflows_stream_shows_it_and_ends_at_once(user):
    workflow = workflow_create(owner=user, name="done", steps=STEPS[:1])
    fetch = Job.objects.get(workflow=workflow)
    started = job_start(job_id=fetch.id, worker="w:1")
    job_succeed(job_id=fetch.id, attempts=started.attempts, result=1)
    events = stream(
        f"/api/v1/workflows/{workflow.id}/stream/",
        until=lambda events: any(e.get("event") == "end" for e in events),
        **bearer(user),
    )
    assert [flow["status"] for flow in workflow_events(events)] == ["succeeded"]
    assert events[-1] == {"event": "end", "id": None, "data": {"id": str(workflow.id), "status": "succeeded"}}


def test_a_malformed_workflow_id_is_404_and_other_methods_405(user):
    assert_error(get("/api/v1/workflows/not-a-uuid/stream/", **bearer(user)), 404)
    workflow = workflow_create(owner=user, name="live", steps=STEPS)
    response = async_to_sync(AsyncClient().post)(f"/api/v1/workflows/{workflow.id}/stream/", **bearer(user))
    assert_error(response, 405)


def test_the_openapi_document_describes_the_workflow_stream(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/workflows/{id}/stream/"]["get"]
    assert operation["operationId"] == "workflows_stream"
    assert "workflows" in operation["tags"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"401", "404", "429"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["id"]
    assert "event: workflow" in operation["description"] and "event: end" in operation["description"]
    state = schema["components"]["schemas"]["WorkflowStreamState"]
    assert {"id", "status", "progress", "steps_total", "finished_at"} <= set(state["properties"])
