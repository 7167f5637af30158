"""``bench.noop``: a plain Celery task with no job bookkeeping, the baseline of bench_worker.py.

Not part of the app: nothing imports this module except bench_worker.py, which also starts its
Celery worker with ``-I bench.noop_tasks`` (``--include``: "comma separated list of additional
modules to import") so that the worker registers the task. The Django settings take no
CELERY_IMPORTS from the environment, hence the command-line option.
"""

from celery import shared_task


@shared_task(name="bench.noop")
def noop(index: int = 0) -> int:
    return index
