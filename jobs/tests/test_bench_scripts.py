"""The benchmarks keep up with the schema and the rules they measure (issue 20: `make bench` from a
fresh clone stopped at two scripts that had not: row_shape.py's hand-written INSERT missed the
columns added since, priority.py's user could no longer submit urgent jobs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import _common as common

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str, tag: str) -> subprocess.CompletedProcess:
    """Run bench/``name`` as ``make bench`` would, on a Redis server and databases of its own; it must succeed."""
    env = {**os.environ, "BENCH_REDIS_URL": "private", "BENCH_DATABASE_TAG": f"{tag}{os.getpid()}"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_row_shape_runs_on_todays_schema():
    """Its shapes are copies of today's jobs_job and its jobs copies of a row the model wrote: a
    column or an index added later is in them, not a NOT NULL violation (statements only, ~10 s)."""
    done = run_script("row_shape.py", "-n", "500", tag="t")
    assert "ratios: WAL per job vs today (without full-page images): search at every version" in done.stdout, (
        done.stdout[-2000:]
    )


@pytest.mark.django_db
def test_a_bench_user_given_submit_urgent_creates_urgent_jobs():
    """priority.py's user, as an operator: urgent needs jobs.submit_urgent (Operator II)."""
    from jobs.services.creation import job_create

    user = common.make_user("bench-urgent", permissions=("submit_urgent",))
    job = job_create(owner=user, celery_task_name="long_running_task", kwargs={"seconds": 0}, priority="urgent")
    assert job.priority == "urgent"
    staff = common.make_user("bench-staff", is_staff=True)
    assert staff.has_perm("jobs.view_job") and not staff.has_perm("jobs.submit_urgent")


def test_broker_drains_worker_runs_on_the_embedded_default_whatever_the_caller_exported(monkeypatch, tmp_path):
    """make bench exports the test suite's PostgreSQL and Redis; broker_drain.py measures the embedded
    default (SQLite, the filesystem broker): its worker kept DATABASE_URL and waited 600 s for jobs
    that were in SQLite."""
    from bench import broker_drain

    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskhub")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "django-db")
    env = broker_drain.embedded_env(str(tmp_path), None)
    worker = common.Process("true", env=broker_drain.worker_env(env), label="drain-env-test")
    try:
        for name in broker_drain.SERVICES:
            assert name not in worker.env, name
        assert worker.env["TASKHUB_VAR_DIR"] == str(tmp_path) and worker.env["WORKER_CONCURRENCY"] == "2"
        with_interval = common.Process(
            "true", env=broker_drain.worker_env(broker_drain.embedded_env("v", 1.0)), label="x"
        )
        assert with_interval.env["BROKER_POLLING_INTERVAL"] == "1.0"
        with_interval.log.unlink()
    finally:
        worker.log.unlink()


def test_prepared_runs_and_compares_the_same_statements():
    """prepared.py (DATABASE_PREPARED_STATEMENTS): both modes run the same statements per job."""
    done = run_script("prepared.py", "-n", "50", "--rounds", "1", tag="p")
    assert "ratios: PostgreSQL CPU per job unprepared/prepared = " in done.stdout, done.stdout[-2000:]
    counts = [
        line.split()[-1] for line in done.stdout.splitlines() if "prepared (default)" in line or "=false)" in line
    ]
    assert len(counts) == 2 and counts[0] == counts[1], done.stdout[-2000:]
