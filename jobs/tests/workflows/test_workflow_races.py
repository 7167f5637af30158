"""Parents sharing children finishing at the same moment, on PostgreSQL, each in a thread of its own
(its own connection and transaction): no deadlock, every shared child released exactly once.

Each finish decrements (or, for a failure under cancel_dependents, revokes) the same children rows;
two finishes locking them in different orders would deadlock (PostgreSQL aborts one: its step's
success would be lost until the sweeper recovered it). The real-worker counterpart is
test_workflow_workers.py's shared-children test; the kills are the fault suite's
(jobs/tests/faults/test_workflow_kills.py)."""

import threading
import time
from functools import partial

import pytest
from django.db import connection, connections

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, Workflow
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.workflows import workflow_cancel, workflow_create

pytestmark = pytest.mark.django_db(transaction=True)

PARENTS, CHILDREN, ROUNDS = 8, 40, 10


def shared_children(owner, *, parents: int = PARENTS, children: int = CHILDREN) -> Workflow:
    """``parents`` roots and ``children`` steps each waiting for every root. The children are listed in
    an order other than their ids' (the edges' insertion order differs from the index's)."""
    steps = [{"id": f"p{i}", "task": "long_running_task", "kwargs": {"seconds": 0}} for i in range(parents)]
    after = [f"p{i}" for i in range(parents)]
    steps += [
        {"id": f"c{i}", "task": "long_running_task", "kwargs": {"seconds": 0}, "after": after[::-1] if i % 2 else after}
        for i in reversed(range(children))
    ]
    return workflow_create(owner=owner, name="shared", steps=steps)


def at_once(calls) -> list[BaseException]:
    """Run ``calls`` in threads released together by a barrier; the exceptions they raised."""
    barrier, errors = threading.Barrier(len(calls)), []

    def run(call) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def started_parents(workflow) -> list[tuple[Job, int]]:
    parents = Job.objects.filter(workflow=workflow, workflow_step__startswith="p").order_by("workflow_step")
    return [(job, job_start(job_id=job.id, worker=f"w:{n}").attempts) for n, job in enumerate(parents)]


def successes(parents) -> list:
    return [partial(job_succeed, job_id=job.id, attempts=attempts) for job, attempts in parents]


def test_parents_of_shared_children_succeeding_at_once_release_each_child_exactly_once(published):
    owner = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    for _ in range(ROUNDS):
        workflow = shared_children(owner)
        published.clear()
        parents = started_parents(workflow)
        errors = at_once(successes(parents))
        assert errors == [], errors  # no deadlock (nor anything else) in any finish
        children = Job.objects.filter(workflow=workflow, workflow_step__startswith="c")
        assert set(children.values_list("parents_remaining", flat=True)) == {0}
        sent = sorted(message["id"] for message in published)
        assert sent == sorted(str(job_id) for job_id in children.values_list("id", flat=True))  # each once
        assert Workflow.objects.get(id=workflow.id).steps_succeeded == PARENTS


def test_a_failure_and_successes_of_parents_sharing_children_at_once_cancel_each_child_once(published):
    owner = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    for _ in range(ROUNDS):
        workflow = shared_children(owner)
        published.clear()
        [(failing, failing_attempts), *succeeding] = started_parents(workflow)
        failure = partial(job_fail, job_id=failing.id, attempts=failing_attempts, error="boom", auto_retry=False)
        errors = at_once([failure, *successes(succeeding)])
        assert errors == [], errors
        children = Job.objects.filter(workflow=workflow, workflow_step__startswith="c")
        assert set(children.values_list("status", flat=True)) == {"revoked"}
        assert published == []  # none sent: the failed parent never released them
        assert JobEvent.objects.filter(job__in=children, kind="revoked").count() == CHILDREN  # each cancelled once
        workflow.refresh_from_db()
        assert (workflow.status, workflow.steps_succeeded, workflow.steps_failed) == ("failed", PARENTS - 1, 1)
        assert workflow.steps_cancelled == CHILDREN


def test_a_cancel_racing_the_successes_of_parents_sharing_children_ends_cancelled_without_deadlock(published):
    owner = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    for _ in range(ROUNDS):
        workflow = shared_children(owner)
        published.clear()
        parents = started_parents(workflow)
        errors = at_once([partial(workflow_cancel, user=owner, workflow_id=workflow.id), *successes(parents)])
        assert errors == [], errors
        children = Job.objects.filter(workflow=workflow, workflow_step__startswith="c")
        # Every child revoked once by the cancel; sent once if their last parent's success came first.
        assert set(children.values_list("status", flat=True)) == {"revoked"}
        assert JobEvent.objects.filter(job__in=children, kind="revoked").count() == CHILDREN
        sent = sorted(message["id"] for message in published)
        assert sent in ([], sorted(str(job_id) for job_id in children.values_list("id", flat=True))), sent
        assert Workflow.objects.get(id=workflow.id).status == "cancelled"


def test_a_workflow_ends_no_earlier_than_its_last_step_when_the_earlier_success_commits_last(published):
    """Two last steps: one success's statement starts first but waits (here on its row, held by
    another transaction); the other's starts later and commits first. The workflow's end is counted by
    the one that commits last, and must not be stamped before the other step's end (fault suite, seed
    602561: 89 microseconds before it, from the waiting statement's start)."""
    owner = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    workflow = shared_children(owner, parents=2, children=0)  # two steps, both last
    (first, first_attempts), (second, second_attempts) = started_parents(workflow)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            holder.set_autocommit(False)
            cursor.execute(f'SELECT 1 FROM "{Job._meta.db_table}" WHERE "id" = %s FOR UPDATE', [first.id])
        waiting = threading.Thread(target=lambda: succeed_and_close(first.id, first_attempts))
        waiting.start()
        wait_for_lock_waiter(first.id)
        job_succeed(job_id=second.id, attempts=second_attempts)  # starts later, commits first
        holder.rollback()
        waiting.join(30)
        assert not waiting.is_alive()
    finally:
        holder.close()
    flow = Workflow.objects.get(id=workflow.id)
    last = max(Job.objects.filter(workflow=workflow).values_list("finished_at", flat=True))
    assert (flow.status, flow.steps_succeeded) == ("succeeded", 2)
    assert Job.objects.get(id=first.id).finished_at < last  # the race happened as arranged
    assert flow.finished_at >= last


def succeed_and_close(job_id, attempts) -> None:
    try:
        job_succeed(job_id=job_id, attempts=attempts)
    finally:
        connection.close()


def wait_for_lock_waiter(job_id, timeout: float = 10.0) -> None:
    """Until a backend of the test database waits on a lock (the thread's success: no other session does)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"the success of {job_id} never waited on its row")
