"""Helpers for tests that run real Celery workers on the test database (PostgreSQL + Redis).

The fixtures built on them (``broker_url``, ``make_worker``, ``worker``, ``private_redis``,
``use_broker``, ``rabbitmq_url``) are in jobs/tests/conftest.py.
"""

from jobs.models import TERMINAL_STATUSES, Job
from taskhub.celery import app as celery_app
from taskhub.testing.processes import wait_for


def reset_producers() -> None:
    """Drop this process's broker connections and producers: its next send goes to the broker that
    ``CELERY_BROKER_URL`` names now."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def wait_status(job_id, *statuses: str, timeout: float = 30.0) -> Job:
    """Wait until the job reaches one of ``statuses`` (default: any terminal status)."""
    wanted = statuses or TERMINAL_STATUSES
    try:
        return wait_for(lambda: Job.objects.filter(id=job_id, status__in=wanted).first(), timeout=timeout)
    except AssertionError:
        status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
        raise AssertionError(f"job {job_id} did not become {'/'.join(wanted)} in {timeout}s: it is {status}") from None
