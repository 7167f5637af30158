"""The worker process's one watchdog thread: it beats every job run of the process, flushes their
throttled progress, and never touches a run once that run has stopped.

Runs here are started as the task base starts them (``job_start``, then ``JobRun.start``) in this
test process; the watchdog thread writes through its own connection, so rows must be committed
(transactional_db).
"""

import threading
import time

import pytest

from jobs.catalog import catalog
from jobs.models import Job
from jobs.services.execution import job_start
from jobs.tasks.run import JobRun
from jobs.tests.factories import make
from taskhub.testing import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def started_run(**fields) -> JobRun:
    job = job_start(job_id=make(**fields).id, worker="test:1")
    return JobRun(job=job, entry=catalog.get("long_running_task"), worker="test:1")


def heartbeat(run: JobRun):
    return Job.objects.values_list("heartbeat_at", flat=True).get(id=run.job_id)


def watchdog_threads() -> int:
    return sum(thread.name == "job-watchdog" for thread in threading.enumerate())


def test_one_thread_beats_every_run_of_the_process_and_none_after_it_stopped(settings):
    settings.JOB_HEARTBEAT_INTERVAL = 0.2
    runs = [started_run(), started_run()]
    first = {run.job_id: heartbeat(run) for run in runs}
    for run in runs:
        run.start()
    try:
        wait_for(lambda: all(heartbeat(run) > first[run.job_id] for run in runs), timeout=5, message="heartbeats")
        assert watchdog_threads() == 1
    finally:
        for run in runs:
            run.stop()
    last = {run.job_id: heartbeat(run) for run in runs}
    time.sleep(0.6)  # three intervals
    assert {run.job_id: heartbeat(run) for run in runs} == last
    assert watchdog_threads() == 1  # kept for the next runs: no thread per job


def progress_of(run: JobRun) -> tuple[int, dict]:
    return Job.objects.values_list("progress", "progress_meta").get(id=run.job_id)


def test_progress_right_after_the_start_is_written_when_the_interval_is_over():
    """Production defaults (JOB_PROGRESS_MIN_INTERVAL 0.5 s, heartbeat 5 s): the start has just
    written the row, so a report at once waits for the interval, then the watchdog writes it, long
    before the next heartbeat. A later report, past the interval, is written at once."""
    run = started_run()
    run.start()
    try:
        run.progress(10, "first")
        assert progress_of(run)[0] == 0  # held back
        wait_for(lambda: progress_of(run)[0] == 10, timeout=3, message="the watchdog to write the held report")
        flushed = time.monotonic() - run.started
        assert 0.45 <= flushed < 3, flushed
        assert progress_of(run) == (10, {"message": "first"})
        time.sleep(max(0.0, run._last_write + 0.55 - time.monotonic()))
        run.progress(20, "past the interval")
        assert progress_of(run) == (20, {"message": "past the interval"})  # written at once
    finally:
        run.stop()


def test_a_run_that_stops_within_the_interval_leaves_its_report_to_the_outcome():
    """The watchdog never writes the held report once the run has stopped: the task base writes it
    with the outcome (test_task_base)."""
    run = started_run()
    run.start()
    run.progress(0, "0/0s")
    run.stop()
    time.sleep(0.8)
    assert progress_of(run) == (0, {})
    assert run.take_held() == (0, {"message": "0/0s"})


def test_throttled_progress_is_flushed_by_the_next_heartbeat(settings):
    settings.JOB_HEARTBEAT_INTERVAL = 0.3
    settings.JOB_PROGRESS_MIN_INTERVAL = 60
    run = started_run()
    run.start()
    try:
        run.progress(10, "held back by the throttle")
        run.progress(55, "held back by the throttle too")
        assert progress_of(run)[0] == 0
        wait_for(
            lambda: progress_of(run)[0] == 55,
            timeout=5,
            message="the watchdog to flush the latest progress",
        )
        assert progress_of(run)[1] == {"message": "held back by the throttle too"}
    finally:
        run.stop()


def test_a_run_whose_job_moved_on_learns_it_at_the_next_heartbeat(settings):
    settings.JOB_HEARTBEAT_INTERVAL = 0.2
    run = started_run()
    run.start()
    try:
        Job.objects.filter(id=run.job_id).update(attempts=1)  # re-queued by the sweeper meanwhile
        wait_for(lambda: run.gone, timeout=5, message="the run to learn its job is gone")
    finally:
        run.stop()
