"""The baseline of bench/throughput.py: a plain Celery app as its users run it, nothing of taskhub.

A Redis broker and a Redis result backend (PLAIN_BROKER_URL, PLAIN_RESULT_BACKEND), JSON,
``task_acks_late`` as taskhub runs its jobs, every other setting Celery's default. No Django:
the worker is ``celery -A bench.plain_celery worker`` with the same concurrency and log level as
the Procfile's worker.
"""

import os

from celery import Celery

app = Celery("plain", broker=os.environ["PLAIN_BROKER_URL"], backend=os.environ["PLAIN_RESULT_BACKEND"])
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.task(name="plain.noop")
def noop(index: int = 0) -> int:
    return index
