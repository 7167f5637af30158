"""/api/v1/workflows/: create exactly as the issue's JSON, every bad workflow a 400 naming the step and
field with nothing written, list (filters, cursor pages), detail, cancel, retry, owners."""

import pytest
from django.test import override_settings

from conftest import assert_error
from jobs.models import Job, JobEvent, Workflow, WorkflowDependency

pytestmark = pytest.mark.django_db

URL = "/api/v1/workflows/"

ISSUE_BODY = {
    "name": "nightly",
    "on_failure": "cancel_dependents",
    "steps": [
        {"id": "fetch", "task": "long_running_task", "kwargs": {"seconds": 1}},
        {"id": "a", "task": "process_data", "kwargs": {"records": [{"x": 1}]}, "after": ["fetch"]},
        {"id": "b", "task": "process_data", "kwargs": {"records": [{"x": 2}]}, "after": ["fetch"]},
        {"id": "merge", "task": "long_running_task", "kwargs": {"seconds": 0}, "after": ["a", "b"]},
    ],
}


def nothing_written():
    return (Workflow.objects.count(), Job.objects.count(), JobEvent.objects.count(), WorkflowDependency.objects.count())


def test_create_answers_the_workflow_with_its_steps(user_client, published):
    response = user_client.post(URL, ISSUE_BODY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["status"], body["progress"], body["on_failure"]) == (
        "nightly",
        "pending",
        0,
        "cancel_dependents",
    )
    assert [(s["id"], s["status"], s["after"]) for s in body["steps"]] == [
        ("fetch", "pending", []),
        ("a", "waiting", ["fetch"]),
        ("b", "waiting", ["fetch"]),
        ("merge", "waiting", ["a", "b"]),
    ]
    jobs = {str(job.id): job for job in Job.objects.filter(workflow_id=body["id"])}
    assert {s["job"] for s in body["steps"]} == set(jobs)
    detail = user_client.get(f"{URL}{body['id']}/").json()
    assert detail["steps"] == body["steps"]
    # Each step is an ordinary job of the jobs API, which says whose step it is and what it waits for.
    job = user_client.get(f"/api/v1/jobs/{body['steps'][3]['job']}/").json()
    assert (job["workflow"], job["workflow_step"], job["parents_remaining"], job["status"]) == (
        body["id"],
        "merge",
        2,
        "pending",
    )


def step(step_id, after=(), **extra):
    return {"id": step_id, "task": "long_running_task", "kwargs": {"seconds": 0}, "after": list(after), **extra}


@pytest.mark.parametrize(
    ("steps", "field", "code", "named"),
    [
        ([], "steps", None, None),
        ([step("a"), step("b", ["nope"])], "steps[1].after", "unknown_step", "'b'"),
        ([step("a", ["c"]), step("b", ["a"]), step("c", ["b"])], "steps[0].after", "cycle", "'a'"),
        ([step("a", ["a"])], "steps[0].after", "cycle", "'a'"),
        ([step("a"), step("a")], "steps[1].id", "duplicate", "'a'"),
        ([step("a"), {"id": "b", "task": "no_such_task"}], "steps[1].task", "unknown_task", "'b'"),
        ([step("a"), step("b", kwargs={"seconds": "soon"})], "steps[1].kwargs", None, "'b'"),
        ([step("a"), step("b", args=[1, 2, 3, 4])], "steps[1].args", None, "'b'"),
        ([step("a"), {"task": "long_running_task"}], "steps[1].id", None, None),
        ([step("a"), step("b", colour="red")], "steps[1].colour", None, None),
        ([step("a"), {**step("b"), "after": "a"}], "steps[1].after", None, None),
        ([step("a"), "b"], "steps[1]", None, None),
    ],
)
def test_a_bad_workflow_is_a_400_naming_the_step_and_field_and_nothing_is_written(
    user_client, published, steps, field, code, named
):
    before = nothing_written()
    response = user_client.post(URL, {"name": "bad", "steps": steps}, format="json")
    body = assert_error(response, 400, code=code, field=field)
    if named:
        assert named in body["message"], body
    assert nothing_written() == before
    assert published == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": [step("a")]}, "name"),
        ({"name": "x", "on_failure": "explode", "steps": [step("a")]}, "on_failure"),
        ({"name": "x"}, "steps"),
        ({"name": "x", "steps": "a"}, "steps"),
    ],
)
def test_bad_top_level_fields_are_a_400_naming_them(user_client, body, field):
    assert_error(user_client.post(URL, body, format="json"), 400, field=field)
    assert nothing_written() == (0, 0, 0, 0)


def test_more_than_workflow_max_steps_is_a_400_and_nothing_is_written(user_client, published):
    with override_settings(WORKFLOW_MAX_STEPS=3):
        response = user_client.post(URL, {"name": "big", "steps": [step(f"s{n}") for n in range(4)]}, format="json")
    body = assert_error(response, 400, code="too_many", field="steps")
    assert "At most 3 steps" in body["message"]
    assert nothing_written() == (0, 0, 0, 0)


def test_the_default_limit_is_10000_steps(user_client, settings):
    assert settings.WORKFLOW_MAX_STEPS == 10_000
    response = user_client.post(URL, {"name": "big", "steps": [step(f"s{n}") for n in range(10_001)]}, format="json")
    body = assert_error(response, 400, field="steps")
    assert "10000" in body["message"].replace(",", ""), body
    assert nothing_written() == (0, 0, 0, 0)


def test_list_filters_by_status_and_name_with_cursor_pages(user_client, other_client):
    for name in ("a", "b", "a"):
        assert user_client.post(URL, {"name": name, "steps": [step("x")]}, format="json").status_code == 201
    other_client.post(URL, {"name": "a", "steps": [step("x")]}, format="json")
    page = user_client.get(URL, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert len(user_client.get(page["next"]).json()["results"]) == 1
    assert [w["name"] for w in user_client.get(URL, {"name": "a"}).json()["results"]] == ["a", "a"]
    assert user_client.get(URL, {"status": "succeeded"}).json()["results"] == []
    assert len(user_client.get(URL, {"status": "pending"}).json()["results"]) == 3
    assert_error(user_client.get(URL, {"status": "nope"}), 400, field="status")
    assert_error(user_client.get(URL, {"page_size": "x"}), 400, field="page_size")


def test_another_users_workflow_is_not_found(user_client, other_client):
    workflow_id = other_client.post(URL, {"name": "mine", "steps": [step("x")]}, format="json").json()["id"]
    assert_error(user_client.get(f"{URL}{workflow_id}/"), 404)
    assert_error(user_client.post(f"{URL}{workflow_id}/cancel/"), 404)
    assert_error(user_client.post(f"{URL}{workflow_id}/retry/"), 404)


def test_cancel_then_retry_through_the_api(user_client):
    workflow_id = user_client.post(URL, ISSUE_BODY, format="json").json()["id"]
    response = user_client.post(f"{URL}{workflow_id}/cancel/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["steps_cancelled"], body["progress"]) == ("cancelled", 4, 100)
    assert {s["status"] for s in body["steps"]} == {"revoked"}
    assert_error(user_client.post(f"{URL}{workflow_id}/cancel/"), 409)
    body = user_client.post(f"{URL}{workflow_id}/retry/").json()
    assert body["status"] == "pending"
    assert [s["status"] for s in body["steps"]] == ["pending", "waiting", "waiting", "waiting"]
    assert_error(user_client.post(f"{URL}{workflow_id}/retry/"), 409)


def test_a_step_is_not_deleted_alone(user_client):
    body = user_client.post(URL, {"name": "w", "steps": [step("x")]}, format="json").json()
    job_id = body["steps"][0]["job"]
    Job.objects.filter(id=job_id).update(status="succeeded")
    assert_error(user_client.delete(f"/api/v1/jobs/{job_id}/"), 409, code="workflow_step")
    assert Job.objects.filter(id=job_id).exists()
