"""A random 50-step DAG while worker processes are SIGKILLed: every step succeeds exactly once, none is
lost, and no step starts before all its parents have succeeded (read from the rows' timelines).

The recovery intervals are shortened (SHORT_RECOVERY, the sweeper called by the test) so that a
killed step is re-queued within seconds: the same mechanism as with the production defaults, which
jobs/tests/faults/test_faults.py exercises for single jobs (a workflow step is recovered as any job is)."""

import os
import random
import signal
import time

import pytest
from django.db.models import Min

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, Workflow, WorkflowDependency
from jobs.services.recovery import job_sweep
from jobs.workflows import workflow_create
from taskhub.testing import SHORT_RECOVERY

pytestmark = [pytest.mark.worker, pytest.mark.timeout(240)]
STEPS = 50


@pytest.fixture
def fast_sweep(settings):
    settings.JOB_STALE_AFTER = float(SHORT_RECOVERY["JOB_STALE_AFTER"])
    settings.JOB_DISPATCH_AFTER = 0
    return settings


def random_dag(rng: random.Random) -> list[dict]:
    steps = []
    for index in range(STEPS):
        after = rng.sample([f"s{i}" for i in range(index)], k=min(index, rng.choice([0, 1, 2, 3]))) if index else []
        steps.append(
            {"id": f"s{index}", "task": "long_running_task", "kwargs": {"seconds": rng.choice([0, 1, 1, 2])},
             "after": after, "max_retries": 5}
        )  # fmt: skip
    return steps


@pytest.mark.parametrize("seed", [7])
def test_a_random_dag_survives_pool_sigkills_with_every_step_released_once(make_worker, fast_sweep, seed):
    rng = random.Random(seed)
    user = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    workflow = workflow_create(owner=user, name="random", steps=random_dag(rng))
    worker = make_worker(concurrency=4, env=SHORT_RECOVERY)
    kills = 0
    deadline = time.monotonic() + 180
    while not Workflow.objects.filter(id=workflow.id, status="succeeded").exists():
        assert time.monotonic() < deadline, dict(
            Job.objects.filter(workflow=workflow).values_list("workflow_step", "status")
        )
        if kills < 3 and Job.objects.filter(workflow=workflow, status="running", progress__gt=0).exists():
            pids = worker.pool_pids()
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
                kills += 1
                time.sleep(1)
        job_sweep()
        time.sleep(0.3)
    assert kills >= 2

    steps = {job.id: job for job in Job.objects.filter(workflow=workflow)}
    assert len(steps) == STEPS and {job.status for job in steps.values()} == {"succeeded"}  # 0 lost
    succeeded = dict(
        JobEvent.objects.filter(job_id__in=steps, kind="succeeded").values_list("job_id").annotate(first=Min("at"))
    )
    counts = JobEvent.objects.filter(job_id__in=steps, kind="succeeded").values_list("job_id", flat=True)
    assert sorted(counts) == sorted(steps)  # each exactly once
    first_start = dict(
        JobEvent.objects.filter(job_id__in=steps, kind="started").values_list("job_id").annotate(first=Min("at"))
    )
    edges = list(WorkflowDependency.objects.filter(child__workflow=workflow).values_list("parent_id", "child_id"))
    assert edges
    for parent, child in edges:  # no step started before every parent had succeeded
        assert first_start[child] >= succeeded[parent], (steps[parent].workflow_step, steps[child].workflow_step)
    assert Workflow.objects.get(id=workflow.id).steps_succeeded == STEPS
    requeued = JobEvent.objects.filter(job_id__in=steps, kind="requeued").count()
    print(f"\nrandom DAG (seed {seed}): {len(edges)} edges, {kills} pool SIGKILLs, {requeued} steps re-queued")
