"""Tasks with short time limits, for jobs/tests/tasks/test_time_limits.py (the built-in tasks keep
their production limits).

Workers import this module through ``TASKHUB_TASK_MODULES``; the test process registers it with the
``time_limited_tasks`` fixture. It imports nothing of pytest.
"""

import time

from celery.exceptions import SoftTimeLimitExceeded

from jobs.tasks.registry import job_task

HARD_LIMIT = 2
SOFT_LIMIT = 1


def _spin(seconds: float) -> int:
    """Pure Python work for ``seconds``: a CPU-bound task that never waits."""
    until, turns = time.monotonic() + seconds, 0
    while time.monotonic() < until:
        turns += sum(i * i for i in range(1000)) & 1
    return turns


@job_task(name="jobs.tests.timelimit.spin", time_limit=HARD_LIMIT, cancellable=False)
def spin(self, seconds: float = 30.0) -> dict:
    """CPU-bound past its hard limit."""
    return {"turns": _spin(seconds)}


@job_task(name="jobs.tests.timelimit.sleep", time_limit=HARD_LIMIT, cancellable=False)
def sleep(self, seconds: float = 30.0) -> dict:
    """Blocked in C (``time.sleep``) past its hard limit."""
    time.sleep(seconds)
    return {"slept": seconds}


@job_task(name="jobs.tests.timelimit.soft", soft_time_limit=SOFT_LIMIT, time_limit=HARD_LIMIT + 1, cancellable=False)
def soft(self, seconds: float = 30.0) -> dict:
    """Spins past its soft limit, then cleans up and returns: the soft limit reached it."""
    started = time.monotonic()
    try:
        _spin(seconds)
    except SoftTimeLimitExceeded:
        return {"soft_limit_after": round(time.monotonic() - started, 2)}
    return {"soft_limit_after": None}


@job_task(name="jobs.tests.timelimit.stubborn", time_limit=HARD_LIMIT, cancellable=False)
def stubborn(self, seconds: float = 30.0) -> dict:
    """Swallows every exception, the time limit's too, and goes on working."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            _spin(until - time.monotonic())
        except Exception:  # noqa: BLE001 - on purpose: a task that will not stop
            continue
    return {"stopped": False}
