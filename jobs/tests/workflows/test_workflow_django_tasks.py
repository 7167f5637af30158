"""django.tasks functions as workflow steps: ``jobs.tasks.django_workflows.task_step(task, *args,
**kwargs)`` is a canvas step that runs a ``@task`` function of taskhub's backend, as its ``enqueue``
would (the same runner job), inside chain/group/chord; each step's result is readable with the
standard API (``task.get_result(step job id)``). Real worker, PostgreSQL, Redis."""

import pytest

from accounts.tests.factories import UserFactory
from jobs.models import Job, Workflow
from jobs.tasks.django_backend import RUNNER_TASK
from jobs.tasks.django_workflows import task_step
from jobs.tasks.standard_api import TaskResultStatus
from jobs.tests import standard_tasks
from jobs.workflows import chain, chord, group, step, workflow_create
from taskhub.errors import InvalidInput
from taskhub.testing import wait_for


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_a_chain_of_django_tasks_runs_in_order_and_each_result_is_a_standard_result(make_worker):
    user = UserFactory()
    flow = chord(
        group(task_step(standard_tasks.add, 1, 2, id="one"), task_step(standard_tasks.add, a=3, b=4, id="two")),
        chain(task_step(standard_tasks.async_add, 5, 6, id="three"), step("gather", id="merge")),
    )
    workflow = workflow_create(owner=user, name="standard", steps=flow)
    make_worker()
    wait_for(lambda: Workflow.objects.filter(id=workflow.id, status="succeeded").exists(), timeout=60)

    jobs = {job.workflow_step: job for job in Job.objects.filter(workflow=workflow)}
    assert {jobs[name].celery_task_name for name in ("one", "two", "three")} == {RUNNER_TASK}
    assert jobs["three"].started_at >= max(jobs["one"].finished_at, jobs["two"].finished_at)
    result = standard_tasks.add.get_result(str(jobs["one"].id))
    assert (result.status, result.return_value, result.args) == (TaskResultStatus.SUCCESSFUL, 3, [1, 2])
    assert standard_tasks.add.get_result(str(jobs["two"].id)).return_value == 7
    assert standard_tasks.async_add.get_result(str(jobs["three"].id)).return_value == 11
    assert jobs["merge"].result["steps"] == ["three"]  # the callback reads its parent's result


@pytest.mark.django_db
def test_a_step_of_a_task_of_taskhubs_backend_only_and_json_arguments(user):
    with pytest.raises(TypeError, match=r"django\.tasks Task"):
        task_step(print)
    with pytest.raises(TypeError, match="Unsupported type"):
        task_step(standard_tasks.add, object(), 1)
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_a_bad_step_is_refused_naming_it_and_nothing_is_written(user):
    urgent = standard_tasks.add.using(priority=80)  # urgent: the owner needs the permission, as in the API
    with pytest.raises(InvalidInput) as refused:
        workflow_create(owner=user, name="bad", steps=chain(task_step(standard_tasks.add, 1, 2), task_step(urgent, 1)))
    assert "steps[1].priority" in refused.value.fields
    assert Workflow.objects.count() == Job.objects.count() == 0


def test_steps_without_an_id_are_numbered_by_their_function_and_carry_the_runners_arguments():
    steps = chain(
        task_step(standard_tasks.add, 1, 2), task_step(standard_tasks.add.using(priority=10), 3, b=4)
    ).to_steps()
    assert [s["id"] for s in steps] == ["add-1", "add-2"] and steps[1]["after"] == ["add-1"]
    assert steps[1]["task"] == RUNNER_TASK and steps[1]["priority"] == "high"
    assert steps[1]["kwargs"] == {
        "task": "jobs.tests.standard_tasks.add",
        "args": [3],
        "kwargs": {"b": 4},
        "priority": 10,
        "queue_name": "default",
        "run_after": None,
    }
