"""manage.py enqueue_job --wait: follows the job (a bar on a terminal, plain lines elsewhere) with a real worker,
through the live-progress mechanism (Redis pub/sub; re-reading the row without Redis)."""

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, connections

from jobs.management.progress import JobState, WaitTimeout, job_states
from jobs.models import Job, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import job_succeed, job_update_progress
from jobs.services.operations import job_cancel
from jobs.tests.commands.test_command_enqueue_job import UUID, enqueue, failure
from jobs.tests.factories import JobFactory
from taskhub.errors import NotFound
from taskhub.testing import child_database_url

# Long enough for a loaded machine, short enough that a lost job fails the test with a clear message.
WAIT = ("--wait", "--timeout", "60")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a console's stdout does."""

    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_wait_on_a_job_that_is_already_revoked_exits_1_at_once(user):
    args = ("long_running_task", "--user", user.username, "--idempotency-key", "once")
    job_id = enqueue(*args)[0].strip()
    job_cancel(job_id=job_id, by=user)
    message = failure(*args, "--wait", returncode=1)
    assert message == f"Job {job_id} was revoked by {user.username}."


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_wait_follows_a_succeeding_job_in_plain_lines_and_exits_0(worker, user):
    out, _ = enqueue("long_running_task", "--args", "[2]", "--user", user.username, *WAIT)
    job_id, *progress, summary = out.splitlines()
    job = Job.objects.get(id=job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert progress[-1] == "succeeded 100%  2/2s"
    assert any(line.startswith("running") for line in progress), progress
    assert all(re.match(r"^(pending|running|succeeded) +\d{1,3}%", line) for line in progress), progress
    assert len(progress) == len(set(progress)), "one line per change"
    assert "\r" not in out and "\x1b" not in out  # plain lines, no terminal control
    assert re.match(rf"^Job {job_id} succeeded in \d+\.\ds\. Result: \{{.*\"seconds\": 2\b", summary), summary


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_job_states_yields_each_change_until_the_end_outside_any_transaction(worker, user):
    job = job_create(owner=user, celery_task_name="long_running_task", args=[1])
    states = []
    for state in job_states(user=user, job_id=job.id, timeout=30):
        assert not connection.in_atomic_block
        states.append(state)
    assert states[-1] == JobState(status="succeeded", progress=100, message="1/1s")
    assert not any(state.finished for state in states[:-1]) and len(states) == len(set(states))


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_wait_on_a_terminal_shows_a_live_bar(worker, user):
    terminal = Terminal()
    out, _ = enqueue("long_running_task", "--args", "[1]", "--user", user.username, *WAIT, stdout=terminal)
    job_id = out.splitlines()[0]
    assert Job.objects.get(id=job_id).status == JobStatus.SUCCEEDED
    assert "\x1b[" in out  # rich drew (and redrew) the bar
    assert "100%" in out and "succeeded" in out and "1/1s" in out


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_wait_on_a_failing_job_exits_1_with_its_error(worker, user):
    with pytest.raises(CommandError) as caught:
        enqueue("process_data", "--kwargs", '{"records": [1, 2, 3]}', "--user", user.username, *WAIT)
    assert caught.value.returncode == 1
    assert re.fullmatch(
        r"Job [0-9a-f-]{36} failed: ValueError: every record must be a JSON object", str(caught.value)
    ), caught.value


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_json_with_wait_prints_the_finished_job_and_the_progress_on_stderr(worker, user):
    out, err = enqueue("long_running_task", "--args", "[1]", "--user", user.username, *WAIT, "--json")
    document = json.loads(out)
    assert (document["status"], document["progress"], document["result"]["seconds"]) == ("succeeded", 100, 1)
    assert err.splitlines()[-1] == "succeeded 100%  1/1s"


def in_thread(work) -> threading.Thread:
    """Write from another thread (a worker's stand-in) while the test thread waits."""

    def run():
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)  # the writes commit on another thread
def test_waiting_reacts_to_each_write_at_once_through_redis_pub_sub(user, settings):
    """Not the old poll of the row twice a second: with Redis the row is re-read only every
    JOB_STREAM_KEEPALIVE (15 s), so a change seen within a fraction of a second came through pub/sub."""
    assert settings.JOB_EVENTS_REDIS_URL, "run the suite with `make test` (a Redis broker)"
    assert settings.JOB_STREAM_KEEPALIVE == 15.0
    job = JobFactory(owner=user, running=True)
    written: dict[int, float] = {}

    def work():
        for percent in (10, 30, 50, 70, 90):
            time.sleep(0.3)
            written[percent] = time.monotonic()
            job_update_progress(job_id=job.id, attempts=0, progress=percent, message=f"at {percent}")
        job_succeed(job_id=job.id, attempts=0, result="ok")

    thread = in_thread(work)
    delays, seen = [], []
    for state in job_states(user=user, job_id=job.id, timeout=20):
        seen.append((state.status, state.progress, state.message))
        if state.status == JobStatus.RUNNING and state.progress in written:
            delays.append(time.monotonic() - written[state.progress])
    thread.join()
    assert seen == [
        ("running", 0, ""),
        *[("running", percent, f"at {percent}") for percent in (10, 30, 50, 70, 90)],
        ("succeeded", 100, "at 90"),
    ]
    assert len(delays) == 5 and max(delays) < 0.2, delays


@pytest.mark.django_db(transaction=True)
def test_without_redis_waiting_falls_back_to_reading_the_row(user, settings):
    settings.JOB_EVENTS_REDIS_URL = ""  # the embedded default
    job = JobFactory(owner=user, running=True)

    def work():
        time.sleep(0.3)
        job_update_progress(job_id=job.id, attempts=0, progress=40, message="almost")
        time.sleep(0.8)  # more than one read apart (JOB_STREAM_POLL_INTERVAL)
        job_succeed(job_id=job.id, attempts=0, result="ok")

    thread = in_thread(work)
    seen = [(state.status, state.progress) for state in job_states(user=user, job_id=job.id, timeout=20)]
    thread.join()
    assert seen == [("running", 0), ("running", 40), ("succeeded", 100)]


@pytest.mark.django_db(transaction=True)
def test_waiting_times_out_on_an_active_job_and_refuses_a_deleted_or_foreign_one(user, other_user, settings):
    job = JobFactory(owner=user, running=True, progress=20)
    with pytest.raises(WaitTimeout) as caught:
        list(job_states(user=user, job_id=job.id, timeout=0.5))
    assert caught.value.state == JobState(status="running", progress=20, message="")

    with pytest.raises(NotFound):
        next(job_states(user=other_user, job_id=job.id))  # another user's job, as in the API

    settings.JOB_EVENTS_REDIS_URL = ""  # a deletion is not published: notice it at the next read of the row
    thread = in_thread(lambda: (time.sleep(0.3), Job.objects.filter(id=job.id).delete()))
    with pytest.raises(NotFound, match="no longer exists"):
        list(job_states(user=user, job_id=job.id, timeout=20))
    thread.join()


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """manage.py enqueue_job as a real process, on this test's database and broker."""
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    command = [sys.executable, "manage.py", "enqueue_job", *args]
    return subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_as_a_real_process_the_exit_status_tells_the_outcome(worker, user):
    bad = run("no_such_task", "--user", user.username)
    assert bad.returncode == 2 and "TASK: unknown task 'no_such_task'" in bad.stderr, bad.stderr
    malformed = run("long_running_task", "--kwargs", "{", "--user", user.username)
    assert malformed.returncode == 2 and "--kwargs: not valid JSON" in malformed.stderr, malformed.stderr
    assert not Job.objects.exists()

    succeeded = run("long_running_task", "--args", "[1]", "--user", user.username, *WAIT)
    assert succeeded.returncode == 0, succeeded.stderr
    lines = succeeded.stdout.splitlines()
    assert UUID.match(lines[0]) and "succeeded 100%  1/1s" in lines, lines  # a pipe: plain lines

    failed = run("process_data", "--kwargs", '{"records": [1]}', "--user", user.username, *WAIT)
    assert failed.returncode == 1 and "failed: ValueError: every record must be a JSON object" in failed.stderr

    timed_out = run("long_running_task", "--args", "[5]", "--user", user.username, "--wait", "--timeout", "0.5")
    assert timed_out.returncode == 3, timed_out.stderr
    job_id = timed_out.stdout.splitlines()[0]
    assert f"Timed out after 0.5s waiting for job {job_id}: it is " in timed_out.stderr
    assert Job.objects.get(id=job_id).status in (JobStatus.PENDING, JobStatus.RUNNING)  # it goes on
    job_cancel(job_id=uuid.UUID(job_id), by=user)
