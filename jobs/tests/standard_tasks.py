"""Functions decorated with Django's standard ``@task``, for test_django_tasks.py.

A worker imports this module when a job names one of them (it is inside an installed app), so
it imports nothing of pytest. Django's task signals are written, one JSON line each, to the file
named by ``TASKHUB_TEST_SIGNAL_LOG`` (set in the test process and in its workers).
"""

import asyncio
import json
import os
import time

from jobs.tasks.standard_api import task, task_enqueued, task_finished, task_started


class Declined(Exception):
    """A task's own exception: its class path is in the result's errors."""


@task
def add(a, b):
    return a + b


@task
async def async_add(a, b):
    await asyncio.sleep(0.01)
    return a + b


@task
def decline(reason):
    raise Declined(reason)


@task(takes_context=True)
def succeed_on_attempt(context, attempt):
    """Fails every attempt before ``attempt`` (counted from 1)."""
    if context.attempt < attempt:
        raise RuntimeError(f"attempt {context.attempt} failed on purpose")
    return context.attempt


@task(takes_context=True)
def count(context, steps, delay):
    """Reports progress at each step; returns how many steps it made and on which attempt."""
    for step in range(steps):
        context.progress(step * 100 // steps, f"step {step + 1} of {steps}")
        time.sleep(delay)
    return {"steps": steps, "attempt": context.attempt}


def _log(name):
    def receiver(sender, task_result, **kwargs):
        path = os.environ.get("TASKHUB_TEST_SIGNAL_LOG")
        if not path:
            return
        line = {
            "signal": name,
            "sender": sender.__name__,
            "id": task_result.id,
            "task": task_result.task.module_path,
            "status": str(task_result.status),
            "attempts": task_result.attempts,
            "pid": os.getpid(),
        }
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")

    return receiver


for _signal, _name in ((task_enqueued, "enqueued"), (task_started, "started"), (task_finished, "finished")):
    _signal.connect(_log(_name), weak=False, dispatch_uid=f"taskhub-test-{_name}")
