"""Real processes of taskhub's own on the test database: Celery workers and beat, started, read and
stopped as a process manager would; and the waiting every harness does (free ports, polling).

Used by the test suite and the benchmarks; nothing here is imported by the running app.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    condition: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.1, message: str = ""
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


def child_database_url() -> str:
    """A DATABASE_URL for child processes that points at the database this test process uses."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def embedded_shell(script: str, *, var_dir: Path, collectstatic: bool = False, no_warnings: bool = True) -> dict:
    """Run ``script`` in ``manage.py shell`` on the embedded default (SQLite in ``var_dir``, no broker,
    as ``make run`` without a DATABASE_URL) after migrating it; the JSON the script printed after
    ``RESULT ``. Fails on any error of the run and, with ``no_warnings``, on a RuntimeWarning (a naive
    datetime given to a DateTimeField)."""
    dropped = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL")
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(TASKHUB_VAR_DIR=str(var_dir), DEBUG="false", SECRET_KEY="embedded-" + "k" * 50)
    steps = [["migrate", "--noinput", "-v0"]]
    if collectstatic:
        steps.append(["collectstatic", "--noinput", "-v0"])
    steps.append(["shell", "-v0", "-c", script])
    for args in steps:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert not no_warnings or "RuntimeWarning" not in done.stderr, done.stderr
    return json.loads(done.stdout.split("RESULT ", 1)[1])


# The recovery settings as production runs them (taskhub/settings/jobs.py's defaults): what the harness
# gives every process it starts unless a test says otherwise.
PRODUCTION_RECOVERY = {
    "JOB_HEARTBEAT_INTERVAL": "5",
    "JOB_STALE_AFTER": "60",
    "JOB_CANCEL_GRACE_SECONDS": "30",
    "JOB_PROGRESS_MIN_INTERVAL": "0.5",
    "JOB_DISPATCH_AFTER": "10",
    "JOB_LOST_AFTER": "60",
    "JOB_SWEEP_INTERVAL": "10",
}
# Shortened recovery, for the few tests that check a mechanism (not its timing) and would otherwise
# idle for a minute; each such test names it and has a production-default counterpart in
# jobs/tests/faults/test_faults.py (docs/RELIABILITY.md).
SHORT_RECOVERY = {
    "JOB_HEARTBEAT_INTERVAL": "0.5",
    "JOB_STALE_AFTER": "3",
    "JOB_CANCEL_GRACE_SECONDS": "2",
    "JOB_PROGRESS_MIN_INTERVAL": "0.2",
}


class WorkerProcess:
    """A real ``celery worker`` process on the test database and a chosen broker."""

    ready_marker = " ready."  # in the log once the process serves

    def __init__(
        self,
        *,
        broker_url: str,
        concurrency: int = 2,
        queues: str = "high_priority,default,low_priority",
        env: dict[str, str] | None = None,
        name: str | None = None,
        database_url: str | None = None,
        pool: str = "prefork",
    ) -> None:
        self.name = name or f"test-{os.getpid()}-{free_port()}"
        self.log = Path(tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url or child_database_url(),
            "CELERY_BROKER_URL": broker_url,
            # The production defaults of the recovery settings (taskhub/settings/jobs.py, .env.example), whatever
            # the calling environment says; a test that needs other values passes them in ``env``
            # (e.g. SHORT_RECOVERY) and says why.
            **PRODUCTION_RECOVERY,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "taskhub",
            "worker",
            "-Q",
            queues,
            "--pool",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{self.name}@%h",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self.process: subprocess.Popen | None = None

    def start(self, *, ready_timeout: float = 30.0, wait: bool = True) -> WorkerProcess:
        """Start the process; with ``wait`` (the default) return once it serves (see wait_ready)."""
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                self.args, cwd=BASE_DIR, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self.wait_ready(ready_timeout) if wait else self

    def wait_ready(self, ready_timeout: float = 30.0) -> WorkerProcess:
        wait_for(
            lambda: self.ready_marker in self.output() or self.process.poll() is not None,
            timeout=ready_timeout,
            message=f"worker {self.name} to be ready",
        )
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited:\n{self.output()[-3000:]}")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pool_pids(self) -> list[int]:
        """The prefork pool's child processes (where the jobs run)."""
        if not self.process:
            return []
        result = subprocess.run(["pgrep", "-P", str(self.process.pid)], check=False, capture_output=True, text=True)
        return [int(pid) for pid in result.stdout.split()]

    def warm_shutdown(self, timeout: float = 120.0) -> None:
        """SIGTERM to the main process only, as a process manager stops it: the worker stops taking
        messages, lets its running jobs finish, then exits."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool), as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


class BeatProcess(WorkerProcess):
    """A real ``celery beat`` process (the Procfile's command) on the test database and a chosen
    broker; started, read and stopped like a worker."""

    ready_marker = "beat: Starting..."

    def __init__(
        self,
        *,
        broker_url: str,
        scheduler: str = "jobs.schedules.scheduler:JobScheduler",
        env: dict[str, str] | None = None,
        name: str | None = None,
        database_url: str | None = None,
    ) -> None:
        name = name or f"beat-{os.getpid()}-{free_port()}"
        super().__init__(broker_url=broker_url, env=env, name=name, database_url=database_url)
        self.args = [sys.executable, "-m", "celery", "-A", "taskhub", "beat", "-S", scheduler, "-l", "info"]
