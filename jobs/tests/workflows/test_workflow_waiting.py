"""Waiting steps (a step whose parents have not all succeeded) are not runnable: they count neither
toward their owner's active-job quota nor in the queues' pending figures (the queues API and admin
page, /metrics' ``taskhub_jobs`` gauge, /api/v1/stats/). A step counts once it is released, and a
release never refuses a step for its owner's quota (a release is not a create): it still runs."""

import pytest
from django.test import Client

from conftest import assert_error
from jobs.models import Job, JobStatus, Workflow
from jobs.queues.selectors import queue_get
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.tests.factories import LONG_RUNNING_TASK
from jobs.tests.observability.test_metrics import scrape, value
from jobs.tests.workflows.test_workflow_services import LONG, _commits_at_once, jobs_of, steps  # noqa: F401  (an autouse fixture)
from jobs.workflows import workflow_create, workflow_retry
from taskhub.errors import ApplicationError

pytestmark = pytest.mark.django_db


def run(job: Job) -> None:
    started = job_start(job_id=job.id, worker="w:1")
    assert started is not None, f"step {job.workflow_step} did not start"
    job_succeed(job_id=job.id, attempts=started.attempts, result={"step": job.workflow_step})


CHAIN = steps(("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["c"]))


def test_waiting_steps_do_not_count_toward_the_active_quota(user):
    user.max_active_jobs = 2
    user.save(update_fields=["max_active_jobs"])
    workflow = workflow_create(owner=user, name="chain", steps=CHAIN)  # one runnable step, three waiting
    assert Job.objects.filter(workflow=workflow).count() == 4
    job_create(owner=user, celery_task_name=LONG_RUNNING_TASK, kwargs={"seconds": 0})  # 2 active: a and this
    with pytest.raises(ApplicationError) as refused:
        job_create(owner=user, celery_task_name=LONG_RUNNING_TASK, kwargs={"seconds": 0})
    assert refused.value.code == "quota_active_jobs"
    assert "you have 2" in refused.value.message


def test_a_workflow_counts_its_runnable_steps_at_create(user, user_client, nothing_written):
    user.max_active_jobs = 2
    user.save(update_fields=["max_active_jobs"])
    three_roots = steps(("a", []), ("b", []), ("c", []), ("merge", ["a", "b", "c"]))
    with nothing_written():
        body = assert_error(
            user_client.post("/api/v1/workflows/", {"name": "wide", "steps": three_roots}, format="json"),
            429,
            "quota_active_jobs",
        )
    assert "asks for 3 jobs" in body["message"]
    assert Workflow.objects.count() == 0
    response = user_client.post("/api/v1/workflows/", {"name": "chain", "steps": CHAIN}, format="json")
    assert response.status_code == 201, response.json()


def test_a_release_at_quota_does_not_lose_the_step(user, published):
    """The owner is at their quota when the fan-out's parent succeeds: all three children are released,
    sent and run (the quota is checked when work is submitted, not when a step it holds is released)."""
    user.max_active_jobs = 1
    user.save(update_fields=["max_active_jobs"])
    workflow = workflow_create(
        owner=user, name="fan", steps=steps(("root", []), ("x", ["root"]), ("y", ["root"]), ("z", ["root"]))
    )
    rows = jobs_of(workflow)
    run(rows["root"])
    sent = {message["id"] for message in published}
    assert {str(rows[name].id) for name in "xyz"} <= sent
    for name in "xyz":
        run(rows[name])
    workflow.refresh_from_db()
    assert workflow.status == "succeeded"


def test_a_retry_counts_only_the_steps_it_makes_runnable(user):
    user.max_active_jobs = 1
    user.save(update_fields=["max_active_jobs"])
    workflow = workflow_create(owner=user, name="chain", steps=CHAIN)
    rows = jobs_of(workflow)
    started = job_start(job_id=rows["a"].id, worker="w:1")
    job_fail(job_id=rows["a"].id, attempts=started.attempts, error="boom", auto_retry=False)
    assert set(Job.objects.filter(workflow=workflow).values_list("status", flat=True)) == {"failed", "revoked"}
    workflow_retry(user=user, workflow_id=workflow.id)  # a runs again; b, c, d wait for it: 1 active
    for name in "abcd":
        run(Job.objects.get(id=rows[name].id))
    assert Workflow.objects.get(id=workflow.id).status == "succeeded"


def test_waiting_steps_are_not_pending_in_the_queue_figures(user, staff_user, staff_client):
    Job.objects.all().delete()
    workflow_create(owner=staff_user, name="chain", steps=CHAIN)  # a pending, b c d waiting
    queue = queue_get(name="default")
    assert (queue["pending"], queue["unsent"], queue["held"]) == (1, 0, 0)

    samples = scrape(_logged_in(staff_user))
    assert value(samples, "taskhub_jobs", status="pending", queue="default", task=LONG_RUNNING_TASK) == 1
    assert value(samples, "taskhub_workflow_steps_waiting") == 3

    stats = staff_client.get("/api/v1/stats/", {"queue": "default"}).json()
    assert stats["queues"][0]["pending"] == 1
    assert stats["workflows"]["steps_waiting"] == 3

    api = staff_client.get("/api/v1/queues/default/").json()
    assert api["pending"] == 1


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_released_step_counts_as_pending(user):
    Job.objects.all().delete()
    workflow = workflow_create(owner=user, name="chain", steps=CHAIN)
    run(jobs_of(workflow)["a"])
    assert queue_get(name="default")["pending"] == 1  # b, released
    assert Job.objects.filter(status=JobStatus.PENDING, parents_remaining__gt=0).count() == 2
