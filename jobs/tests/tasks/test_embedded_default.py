"""The embedded default (no services): SQLite file + Celery's filesystem transport, a real worker."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from taskhub.testing import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]

CREATE = """
from accounts.models import User
from jobs.services.task_service import task_service
user, _ = User.objects.get_or_create(username="smoke", defaults={"email": "smoke@example.com"})
job, celery_id = task_service.create_task(
    db=None, name="smoke", task_type="test_task", celery_task_name="app.tasks.common_tasks.long_running_task",
    args=[1], kwargs={}, priority="normal", user_id=user.id)
print(celery_id)
"""
SHOW = """
import json
from jobs.models import Job
jobs = Job.objects.order_by("id")
print(json.dumps([{"status": j.status, "progress": j.progress, "result": j.result} for j in jobs]))
"""

DONE = ("succeeded", "failed")


def test_embedded_default_runs_a_job_end_to_end(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    env.update(TASKHUB_VAR_DIR=str(tmp_path), DEBUG="false", SECRET_KEY="embedded-" + "k" * 50)

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    manage("migrate", "--noinput", "-v0")
    assert "sqlite3" in manage(
        "shell",
        "-v0",
        "-c",
        "from django.db import connection; print(connection.vendor, connection.settings_dict['ENGINE'])",
    )
    # Two jobs, one pool process: the second task starts on the connection the first one opened.
    job_ids = [manage("shell", "-v0", "-c", CREATE).splitlines()[-1] for _ in range(2)]

    worker = WorkerProcess(
        broker_url="filesystem://localhost//",
        concurrency=1,
        database_url=f"sqlite:///{tmp_path / 'taskhub.sqlite3'}",
        env={
            "TASKHUB_VAR_DIR": str(tmp_path),
            "DEBUG": "false",
            "SECRET_KEY": env["SECRET_KEY"],
            "CELERY_RESULT_BACKEND": "django-db",
        },
    )
    worker.env.pop("CELERY_BROKER_URL")  # nothing set: the embedded default broker
    worker.env.pop("DATABASE_URL")
    worker.start()
    try:
        states = wait_for(
            lambda: (
                all((s := json.loads(manage("shell", "-v0", "-c", SHOW)))[i]["status"] in DONE for i in (0, 1)) and s
            ),
            timeout=60,
            interval=0.5,
            message="the embedded job to finish",
        )
    finally:
        worker.stop()
    for state in states:
        assert state["status"] == "succeeded", worker.output()[-3000:]
        assert state["progress"] == 100 and state["result"]["seconds"] == 1
    assert all(job_id in worker.output() for job_id in job_ids) and "filesystem://" in worker.output()
    assert "No hostname was supplied" not in worker.output()
    assert "Traceback (most recent call last)" not in worker.output(), worker.output()[-3000:]
    assert (tmp_path / "taskhub.sqlite3").exists() and (tmp_path / "broker").is_dir()


QUOTAS = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from jobs.models import Job
from jobs.services.creation import job_create
from jobs.services._quotas import QuotaExceeded
user = User.objects.create(username="quota", email="quota@example.com", max_jobs_per_minute=2, max_active_jobs=3)
def create():
    try:
        return job_create(owner=user, celery_task_name="long_running_task", args=[1]).id
    except QuotaExceeded as exc:
        return exc.code
print(create(), create(), create())  # the third: over 2 per minute
Job.objects.update(created_at=timezone.now() - timedelta(seconds=61))  # out of the window, still active
print(create(), create())  # the fourth is active job 4 of 3
"""


def embedded_shell(tmp_path, script: str) -> list[str]:
    """``script`` run by ``manage.py shell`` on a fresh embedded default (SQLite under ``tmp_path``,
    migrated first): the lines it printed."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    env.update(TASKHUB_VAR_DIR=str(tmp_path), DEBUG="false", SECRET_KEY="embedded-" + "k" * 50)
    for args in (["migrate", "--noinput", "-v0"], ["shell", "-v0", "-c", script]):
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_quotas_count_on_the_embedded_default(tmp_path):
    """The quota counts are SQL of their own (jobs/services/_quotas.py); on SQLite (no row lock)
    they count the same: 2 per minute, then 3 active."""
    first, second = embedded_shell(tmp_path, QUOTAS)[-2:]
    assert first.split()[2] == "quota_per_minute" and len(first.split()) == 3, first
    assert second.split()[1] == "quota_active_jobs", second


CONCURRENCY = """
from accounts.models import User
from jobs.models import Job
from jobs.services.creation import job_create
from jobs.services.execution import job_start, job_succeed
user = User.objects.create(username="keys", email="keys@example.com", is_staff=True)
first, second = (
    job_create(owner=user, celery_task_name="long_running_task", args=[1], concurrency={"key": "k", "limit": 1})
    for _ in range(2)
)
print(job_start(job_id=first.id, worker="w:1") is not None, job_start(job_id=second.id, worker="w:2") is not None)
waiting = Job.objects.get(id=second.id)
print(waiting.concurrency_waiting_since is not None, waiting.dispatched_at is None)
job_succeed(job_id=first.id, attempts=0, result=1, worker="w:1")  # frees the key: the release sends the next
print(Job.objects.get(id=second.id).dispatched_at is not None, job_start(job_id=second.id, worker="w:2") is not None)
"""


def test_concurrency_keys_on_the_embedded_default(tmp_path):
    """The key's claim, wait and release on SQLite (no advisory lock: SQLite serializes writers)."""
    lines = embedded_shell(tmp_path, CONCURRENCY)
    assert lines[-3:] == ["True False", "True True", "True True"], lines
