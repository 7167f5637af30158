"""Test helpers that run real processes: a private Redis server and Celery workers.

Used by the test suite and the benchmarks; nothing here is imported by the running app.
"""

from __future__ import annotations

import os
import shutil
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


class RedisServer:
    """A throwaway redis-server on a free port, that a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="taskhub-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, message=f"redis on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def child_database_url() -> str:
    """A DATABASE_URL for child processes that points at the database this test process uses."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


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
    ) -> None:
        self.name = name or f"test-{os.getpid()}-{free_port()}"
        self.log = Path(tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url or child_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "JOB_HEARTBEAT_INTERVAL": "0.5",
            "JOB_STALE_AFTER": "3",
            "JOB_CANCEL_GRACE_SECONDS": "2",
            "JOB_PROGRESS_MIN_INTERVAL": "0.2",
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

    def start(self, *, ready_timeout: float = 30.0) -> WorkerProcess:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                self.args, cwd=BASE_DIR, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
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
        scheduler: str = "jobs.scheduling:JobScheduler",
        env: dict[str, str] | None = None,
        name: str | None = None,
        database_url: str | None = None,
    ) -> None:
        name = name or f"beat-{os.getpid()}-{free_port()}"
        super().__init__(broker_url=broker_url, env=env, name=name, database_url=database_url)
        self.args = [sys.executable, "-m", "celery", "-A", "taskhub", "beat", "-S", scheduler, "-l", "info"]
