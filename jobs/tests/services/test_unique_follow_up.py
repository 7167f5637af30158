"""keep_latest's follow-up is never lost (issue 21): the finish and its follow-up commit together (a
finish whose follow-up cannot be written does not commit), and the sweep (beat's recover_jobs, every
JOB_SWEEP_INTERVAL) turns a finished row still holding a request into exactly one follow-up, however
many sweeps run at once."""

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.services.recovery import job_follow_up_lost, job_recover_stale, job_sweep
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.testing.processes import child_database_url


def create(user, key="k", seconds=1, **kwargs):
    return job_create(
        owner=user,
        celery_task_name=LONG_RUNNING_TASK,
        args=[seconds],
        kwargs=kwargs,
        max_retries=0,
        unique={"key": key, "policy": "keep_latest"},
    )


def running_with_requests(user, key="k", requests=4):
    """A running keep_latest job and ``requests`` duplicates stored while it runs (the last one wins)."""
    first = create(user, key)
    started = job_start(job_id=first.id, worker="w1")
    for n in range(2, 2 + requests):
        assert create(user, key, seconds=n, label=f"request-{n}").dedupe_outcome == "follow_up_queued"
    return first, started


def follow_ups(first):
    return list(Job.objects.filter(owner_id=first.owner_id, unique_key=first.unique_key).exclude(id=first.id))


def left_by_a_crash(first):
    """The row a process left when it died between the finish's commit and the follow-up (the code
    before the finish wrote both in one transaction): finished, the key released, the request stored."""
    now = timezone.now()
    Job.objects.filter(id=first.id).update(
        status=JobStatus.SUCCEEDED, finished_at=now, heartbeat_at=now, unique_held=False
    )


class Crash(Exception):
    pass


@pytest.mark.django_db
@pytest.mark.parametrize("finish", ["succeed", "fail"])
def test_a_finish_whose_follow_up_cannot_be_written_does_not_commit(user, monkeypatch, finish):
    first, started = running_with_requests(user)

    def crash(*args, **kwargs):
        raise Crash("the process dies while writing the follow-up")

    monkeypatch.setattr("jobs.services._state_create.create_unique", crash)
    end = {
        "succeed": lambda: job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w1"),
        "fail": lambda: job_fail(job_id=first.id, attempts=started.attempts, error="x", worker="w1", auto_retry=False),
    }[finish]
    with pytest.raises(Crash):
        end()
    row = Job.objects.get(id=first.id)
    assert (row.status, row.unique_held, row.unique_follow_up["args"]) == (JobStatus.RUNNING, True, [5])
    assert follow_ups(first) == []

    monkeypatch.undo()
    end()
    [follow_up] = follow_ups(first)
    assert (follow_up.args, follow_up.kwargs, follow_up.status) == ([5], {"label": "request-5"}, JobStatus.PENDING)
    assert Job.objects.get(id=first.id).unique_follow_up is None


@pytest.mark.django_db
def test_the_sweep_turns_a_finished_row_still_holding_its_request_into_one_follow_up(user, other_user, published):
    first, _ = running_with_requests(user)
    untouched, _ = running_with_requests(other_user, requests=1)
    left_by_a_crash(first)

    assert job_sweep().followed_up == 1
    [follow_up] = follow_ups(first)
    assert (follow_up.args, follow_up.kwargs, follow_up.unique_held) == ([5], {"label": "request-5"}, True)
    line = JobEvent.objects.get(job=follow_up, kind="created")
    assert line.message == f"Created as the follow-up of job {first.id} (keep_latest) on queue {follow_up.queue}."
    assert Job.objects.get(id=first.id).unique_follow_up is None
    # Once: the next sweeps find nothing; a running job's request waits for its finish.
    assert job_sweep().followed_up == 0
    assert job_follow_up_lost() == 0
    assert len(follow_ups(first)) == 1
    assert follow_ups(untouched) == []
    assert Job.objects.get(id=untouched.id).unique_follow_up is not None


@pytest.mark.django_db
def test_a_newer_holder_of_the_key_wins_over_a_lost_request(user):
    first, _ = running_with_requests(user)
    left_by_a_crash(first)
    newer = create(user, seconds=42)  # took the released key before the sweep came
    assert newer.dedupe_outcome is None
    assert job_follow_up_lost() == 0
    assert [job.id for job in follow_ups(first)] == [newer.id]
    assert Job.objects.get(id=first.id).unique_follow_up is None


def _in_threads(count: int, work) -> list:
    """``work`` in ``count`` threads started together (each its own connection); their answers."""
    barrier, answers, errors = threading.Barrier(count), [], []

    def run():
        try:
            barrier.wait()
            answers.append(work())
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return answers


@pytest.mark.django_db(transaction=True)
def test_sweeps_running_at_once_create_exactly_one_follow_up_per_row(user):
    firsts = []
    for n in range(20):
        first, _ = running_with_requests(user, key=f"key-{n}", requests=2)
        left_by_a_crash(first)
        firsts.append(first)
    answers = _in_threads(4, job_follow_up_lost)
    assert sum(answers) == 20
    for first in firsts:
        assert [job.args for job in follow_ups(first)] == [[3]]
    assert not Job.objects.filter(unique_follow_up__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_sweep_racing_the_workers_finish_adds_nothing(user):
    first, started = running_with_requests(user)
    finishing, swept = threading.Event(), threading.Event()

    def finish():
        with transaction.atomic():
            job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w1")
            finishing.set()
            swept.wait(30)
        return "finished"

    def sweep():
        finishing.wait(30)
        try:
            return job_follow_up_lost()
        finally:
            swept.set()

    calls = iter([finish, sweep])
    lock = threading.Lock()

    def next_call():
        with lock:
            call = next(calls)
        return call()

    assert sorted(map(str, _in_threads(2, next_call))) == ["0", "finished"]
    assert [job.args for job in follow_ups(first)] == [[5]]


KILLED_INSIDE_THE_FINISH = """
import os, signal
from jobs.services.execution import job_succeed
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
import jobs.services._state_create
jobs.services._state_create.create_unique = die
job_succeed(job_id="{job_id}", attempts={attempts}, result=None, worker="w1")
"""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_inside_the_finish_leaves_no_finish_without_follow_up(user):
    """SIGKILL while the follow-up is being written: nothing of the finish committed. The job stays
    running (its request stored) until recovery ends it as a dead worker's job (JOB_STALE_AFTER, the
    production default), and that end writes the follow-up."""
    first, started = running_with_requests(user)
    script = KILLED_INSIDE_THE_FINISH.format(job_id=first.id, attempts=started.attempts)
    died = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", script],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": child_database_url()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    row = Job.objects.get(id=first.id)
    assert (row.status, row.unique_follow_up["args"]) == (JobStatus.RUNNING, [5])
    assert follow_ups(first) == []

    # The dead worker's heartbeat ages past JOB_STALE_AFTER (as the clock would): recovery ends the job.
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER + 1)
    Job.objects.filter(id=first.id).update(heartbeat_at=stale)
    assert job_recover_stale() == ["failed"]
    [follow_up] = follow_ups(first)
    assert (follow_up.args, follow_up.kwargs, follow_up.status) == ([5], {"label": "request-5"}, JobStatus.PENDING)


@pytest.mark.django_db
def test_a_request_replacing_a_requeued_holder_supersedes_the_stored_one(user):
    """A keep_latest job with a stored request whose worker died is re-queued (a retry left): pending
    again, still holding its key and the request. A newer request then replaces its arguments (the
    policy's answer while pending): the holder runs the newest request, and the older stored one must
    not follow it (it would run last, the newest lost behind it)."""
    first = job_create(
        owner=user,
        celery_task_name=LONG_RUNNING_TASK,
        args=[1],
        max_retries=1,
        unique={"key": "k", "policy": "keep_latest"},
    )
    job_start(job_id=first.id, worker="w1")
    assert create(user, seconds=5, label="stored").dedupe_outcome == "follow_up_queued"
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER + 1)
    Job.objects.filter(id=first.id).update(heartbeat_at=stale)
    assert job_recover_stale() == ["requeued"]

    newest = create(user, seconds=7, label="newest")
    assert (newest.id, newest.dedupe_outcome) == (first.id, "replaced")
    row = Job.objects.get(id=first.id)
    assert (row.args, row.kwargs, row.unique_follow_up) == ([7], {"label": "newest"}, None)
    started = job_start(job_id=first.id, worker="w2")
    job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w2")
    assert follow_ups(first) == []  # the newest request ran; nothing older comes after it
