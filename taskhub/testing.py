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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

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
    """A throwaway redis-server on a free port, that a test can stop and start again.

    ``persistent``: an append-only file written at every command (``appendfsync always``), so a
    restart keeps every message; without it a restart empties the server, as an in-memory Redis does.
    """

    def __init__(self, *, persistent: bool = False) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="taskhub-redis-")
        self.persistent = persistent
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
                *(("--appendonly", "yes", "--appendfsync", "always") if self.persistent else ("--appendonly", "no")),
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

    def forget(self) -> None:
        """Delete what a stopped server stored: its next start is empty, as after a restart without
        persistence (or on a new host)."""
        for path in Path(self.dir).iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TcpProxy:
    """A TCP relay to ``target`` on a free port, which a test can cut (every connection closed, new
    ones refused, as when the server behind it goes down) and restore on the same port.

    It takes a shared server (RabbitMQ) away from one test's processes without touching anyone else's.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name=f"proxy-{self.port}").start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = list(self._connections), set()
        if listener:
            listener.close()
        for sock in connections:
            self._close(sock)

    def close(self) -> None:
        self.cut()


# The local RabbitMQ the suite makes its virtual hosts on (.ci/run starts it).
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60)
    return result.stdout


class RabbitMQVhost:
    """A virtual host of its own on the local RabbitMQ (``rabbitmqctl``), reached through a TcpProxy
    so that a test can take "the broker" down for its own processes only."""

    def __init__(self, base_url: str = AMQP_URL) -> None:
        parsed = urlsplit(base_url)
        self.credentials = f"{parsed.username or 'guest'}:{parsed.password or 'guest'}"
        self.name = f"taskhub_test_{os.getpid()}_{free_port()}"
        self.proxy = TcpProxy((parsed.hostname or "127.0.0.1", parsed.port or 5672))

    @property
    def url(self) -> str:
        return f"amqp://{self.credentials}@127.0.0.1:{self.proxy.port}/{self.name}"

    def start(self) -> RabbitMQVhost:
        self._create()
        self.proxy.start()
        return self

    def _create(self) -> None:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, self.credentials.split(":")[0], ".*", ".*", ".*")

    def stop(self) -> None:
        """Unreachable: every connection closed (RabbitMQ re-queues their unacknowledged messages)."""
        self.proxy.cut()

    def forget(self) -> None:
        """Drop the virtual host with its queues and messages and make it anew: a broker that lost its state."""
        rabbitmqctl("delete_vhost", self.name)
        self._create()

    def queue_sizes(self) -> dict[str, int]:
        """Ready (not unacknowledged) messages per queue."""
        out = rabbitmqctl("list_queues", "-p", self.name, "--no-table-headers", "name", "messages_ready")
        return {name: int(size) for name, size in (line.split() for line in out.splitlines() if line.strip())}

    def close(self) -> None:
        self.proxy.close()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], check=False, capture_output=True, timeout=60)


class PostgresServer:
    """A private PostgreSQL cluster (Debian's binaries, ``initdb`` into a temporary folder, ``pg_ctl`` on a
    free port) that a test may stop and restart without disturbing the shared one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="taskhub-postgres-"))
        self.data = self.dir / "data"
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
        if not versions:
            raise AssertionError("PostgreSQL's server binaries are not installed (Debian package postgresql)")
        self.bin = versions[-1].parent
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"
        )
        return self

    def create_database(self, name: str) -> str:
        """An empty database; returns its URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        """A fast shutdown: open connections are closed, open transactions rolled back."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

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


# The recovery settings as production runs them (taskhub/settings.py's defaults): what the harness
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
# jobs/tests/test_faults.py (docs/RELIABILITY.md).
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
            # The production defaults of the recovery settings (settings.py, .env.example), whatever
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
