"""Workflows with real Celery workers on PostgreSQL + Redis, production recovery settings: a fan-out
of 200 steps and one fan-in callback that runs exactly once, after all 200 succeeded, reading their
200 results; a cancelled workflow's running step stops within a heartbeat and nothing else starts."""

import time

import pytest
from django.db.models import Max

from accounts.tests.factories import UserFactory
from jobs.models import Job, Workflow
from jobs.tests.factories import timeline
from jobs.workflows import chord, group, step, workflow_cancel, workflow_create
from taskhub.testing import wait_for

N = 200
pytestmark = [pytest.mark.worker, pytest.mark.timeout(240)]


def test_fan_out_200_and_one_fan_in_callback_that_runs_exactly_once_after_all_succeeded(make_worker):
    # No quota and no fair-share cap: 200 jobs at once from one user, not deferred to a sweeper this test lacks.
    user = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    fan = group(*(step("long_running_task", id=f"part-{n}", seconds=0, n=str(n)) for n in range(N)))
    workflow = workflow_create(owner=user, name="fan-in", steps=chord(fan, step("gather", id="callback")))
    make_worker(concurrency=4)  # the production defaults of every recovery setting (WorkerProcess)
    wait_for(lambda: Workflow.objects.filter(id=workflow.id, status="succeeded").exists(), timeout=120)

    callback = Job.objects.get(workflow=workflow, workflow_step="callback")
    parts = Job.objects.filter(workflow=workflow).exclude(id=callback.id)
    assert parts.count() == N and set(parts.values_list("status", flat=True)) == {"succeeded"}
    # Exactly once: one start, one success, first attempt.
    kinds = [line.kind for line in timeline(callback)]
    assert kinds.count("started") == 1 and kinds.count("succeeded") == 1, kinds
    assert callback.attempts == 0
    # After all 200 succeeded (the rows' own times), and it read their 200 results.
    assert callback.started_at >= parts.aggregate(last=Max("finished_at"))["last"]
    assert callback.result["count"] == N
    assert callback.result["steps"] == sorted(f"part-{n}" for n in range(N))
    workflow.refresh_from_db()
    assert (workflow.steps_succeeded, workflow.progress, workflow.finished_at is not None) == (N + 1, 100, True)


def test_a_cancelled_workflows_running_step_stops_within_a_heartbeat_and_nothing_else_starts(make_worker):
    user = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    fan = group(*(step("long_running_task", id=f"part-{n}", seconds=0) for n in range(N)))
    workflow = workflow_create(
        owner=user, name="cancelled", steps=chord(group(step("long_running_task", id="root", seconds=60)), fan)
    )
    root = Job.objects.get(workflow=workflow, workflow_step="root")
    make_worker(concurrency=2)  # production defaults: heartbeat 5 s
    wait_for(lambda: Job.objects.filter(id=root.id, status="running", progress__gt=0).exists(), timeout=60)
    workflow_cancel(user=user, workflow_id=workflow.id)
    cancelled = time.monotonic()
    wait_for(lambda: Job.objects.filter(id=root.id, status="revoked").exists(), timeout=15)
    print(f"\nthe running step stopped {time.monotonic() - cancelled:.1f}s after the workflow's cancel")
    assert time.monotonic() - cancelled <= 5 + 2  # within a heartbeat (it stops at its next progress report)
    time.sleep(2)  # anything wrongly sent would start now
    steps = Job.objects.filter(workflow=workflow)
    assert set(steps.exclude(id=root.id).values_list("status", flat=True)) == {"revoked"}
    assert not [line for step in steps.exclude(id=root.id) for line in timeline(step, "started")]
    assert not steps.filter(dispatched_at__isnull=False).exclude(id=root.id).exists()
    workflow.refresh_from_db()
    assert (workflow.status, workflow.steps_cancelled) == ("cancelled", N + 1)


def test_a_release_when_the_owner_is_at_quota_still_runs_every_released_step(make_worker):
    """max_active_jobs=1: the fan-out's root is the owner's one active job; its success releases three
    steps at once, over the quota, and all three run (a release is not a create). Meanwhile a new
    submission of the owner's is refused: the quota still holds for what they submit."""
    from jobs.services.creation import job_create
    from taskhub.errors import ApplicationError

    user = UserFactory(max_active_jobs=1, max_jobs_per_minute=0, max_running_jobs=0)
    fan = group(*(step("long_running_task", id=f"part-{n}", seconds=1) for n in range(3)))
    workflow = workflow_create(
        owner=user, name="at-quota", steps=chord(group(step("long_running_task", id="root", seconds=0)), fan)
    )
    make_worker(concurrency=4)
    wait_for(lambda: Job.objects.filter(workflow=workflow, status="running").exclude(workflow_step="root").exists())
    with pytest.raises(ApplicationError) as refused:
        job_create(owner=user, celery_task_name="long_running_task", kwargs={"seconds": 0})
    assert refused.value.code == "quota_active_jobs"
    wait_for(lambda: Workflow.objects.filter(id=workflow.id, status="succeeded").exists(), timeout=60)
    parts = Job.objects.filter(workflow=workflow).exclude(workflow_step="root")
    assert set(parts.values_list("status", flat=True)) == {"succeeded"} and parts.count() == 3


def test_parents_sharing_children_finishing_at_once_on_real_workers_release_each_child_exactly_once(make_worker):
    """8 parents of 1 s, run side by side on 8 processes, share 30 children (each waits for all 8): they
    finish within moments of each other, each success decrementing the same 30 rows. No deadlock (a
    parent's success would fail or be re-queued), every child released and run exactly once, after all
    8. The same race with threads, and with a failure or a cancel among them: test_workflow_races.py."""
    user = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    parents = group(*(step("long_running_task", id=f"p{n}", seconds=1) for n in range(8)))
    children = group(*(step("long_running_task", id=f"c{n}", seconds=0) for n in range(30)))
    workflow = workflow_create(owner=user, name="shared", steps=chord(parents, children))
    make_worker(concurrency=8)  # production defaults
    wait_for(lambda: Workflow.objects.filter(id=workflow.id, status="succeeded").exists(), timeout=90)

    steps = Job.objects.filter(workflow=workflow)
    ends = sorted(steps.filter(workflow_step__startswith="p").values_list("finished_at", flat=True))
    print(f"\n8 parents finished within {(ends[-1] - ends[0]).total_seconds() * 1000:.0f} ms of each other")
    kinds = [(step.id, line.kind) for step in steps for line in timeline(step)]
    assert {kind for _, kind in kinds} == {"created", "started", "succeeded"}, kinds  # nothing failed or re-queued
    for job in steps:
        assert [kind for job_id, kind in kinds if job_id == job.id] == ["created", "started", "succeeded"]
        assert (job.status, job.parents_remaining, job.attempts) == ("succeeded", 0, 0)
    first_child = steps.filter(workflow_step__startswith="c").order_by("started_at").first()
    assert first_child.started_at >= ends[-1]
