"""The many-hosts bed (taskhub/testing/hosts/): its network (network.py), the db host's servers and
taskhub's Procfile processes on its hosts, run with the production settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings

from taskhub.testing.hosts.network import HOSTS, SERVICES, Network, _kill_namespace, cleanup_leftovers
from taskhub.testing.processes import BASE_DIR, PRODUCTION_RECOVERY, wait_for
from taskhub.testing.servers import PostgresServer, RabbitMQVhost, RedisServer

# Where the records (records.py) and the processes' logs of a closed bed go.
REPORT_DIR = Path(settings.VAR_DIR) / "hosts"


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


class HostProcess:
    """One Procfile process on one host of the bed: started, read, stopped like a process manager does."""

    def __init__(self, bed: Bed, host: str, kind: str, *, env: dict[str, str], ready_marker: str) -> None:
        self.bed, self.host, self.kind = bed, host, kind
        self.name = f"{host}-{kind}"
        self.log = bed.dir / f"{self.name}.log"
        self.env = env
        self.ready_marker = ready_marker
        self.process: subprocess.Popen | None = None

    def start(self) -> HostProcess:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                self.bed.on_host(self.host, ["bash", "-c", procfile()[self.kind]]),
                cwd=BASE_DIR,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 90.0) -> HostProcess:
        wait_for(
            lambda: self.ready_marker in self.output() or self.process.poll() is not None,
            timeout=timeout,
            message=f"{self.name} to be ready",
        )
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.output()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)


READY = {"worker": " ready.", "maintenance": " ready.", "beat": "beat: Starting...", "web": "Uvicorn running"}


class Bed(Network):
    """The bed: namespaces, bridge, links (``Network``), the db host's servers and the Procfile processes."""

    def __init__(self, broker: str = "redis") -> None:
        super().__init__()
        self.broker = broker
        self.dir = Path(tempfile.mkdtemp(prefix="taskhub-bed-"))
        self.processes: list[HostProcess] = []
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.rabbitmq: RabbitMQVhost | None = None

    # -- the db host --------------------------------------------------------------------------------
    def start_servers(self) -> Bed:
        db = self.address("db")
        self.postgres = PostgresServer(netns=self.ns("db"), host=db, port=5432).start()
        self.postgres.create_database("taskhub")
        self.redis = RedisServer(netns=self.ns("db"), host=SERVICES["broker"], port=6379, persistent=True).start()
        if self.broker == "rabbitmq":
            # A virtual host of its own on the machine's RabbitMQ, reached through a relay that listens
            # on the db host's broker address (as the fault suite reaches it through a relay).
            self.rabbitmq = RabbitMQVhost(netns=self.ns("db"), host=SERVICES["broker"], port=5672).start()
        return self

    @property
    def database_url(self) -> str:
        """As the bed's hosts reach it (TCP to the db host)."""
        return self.postgres.url("taskhub")

    @property
    def observer_url(self) -> str:
        """As the test process reaches it (the cluster's Unix socket): from outside the bed."""
        return self.postgres.socket_url("taskhub")

    @property
    def broker_url(self) -> str:
        return self.rabbitmq.url if self.rabbitmq else self.redis.url

    # -- taskhub's processes ------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """The production settings every process of the bed runs with."""
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "DEBUG": "false",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": "django-db",
            "TASKHUB_VAR_DIR": str(self.dir / "var"),
            "ALLOWED_HOSTS": self.address("api"),
            "TASKHUB_HOST": self.address("api"),
            "TASKHUB_PORT": "8000",
            **PRODUCTION_RECOVERY,
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def manage(self, *args: str, host: str = "api", env: dict[str, str] | None = None, timeout: float = 300) -> str:
        """``manage.py args`` run on ``host``; its standard output."""
        result = subprocess.run(
            self.on_host(host, [sys.executable, "manage.py", *args]),
            cwd=BASE_DIR,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {args[0]} on {host} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, host: str, kind: str, **env: str) -> HostProcess:
        process = HostProcess(self, host, kind, env=self.env(**env), ready_marker=READY[kind]).start()
        self.processes.append(process)
        return process

    def start_taskhub(self, *, web: bool = False, clocks: dict[str, str] | None = None) -> Bed:
        """The hosts' processes: api (beat, web if asked), worker1 (worker), worker2 (worker,
        maintenance, a second beat). ``clocks``: a host's clock offset (libfaketime's ``FAKETIME``,
        e.g. ``"+120s"``) for every process it runs."""
        self.manage("migrate", "--noinput", "-v0")
        clocks = clocks or {}
        started = [
            self.start(host, kind, **self.clock(clocks.get(host)))
            for host, kind in (
                ("worker1", "worker"),
                ("worker2", "worker"),
                ("worker2", "maintenance"),
                ("api", "beat"),
                ("worker2", "beat"),
                *((("api", "web"),) if web else ()),
            )
        ]
        for process in started:
            process.wait_ready()
        return self

    @staticmethod
    def clock(offset: str | None) -> dict[str, str]:
        """The environment that shifts a process's clock by ``offset`` (libfaketime, Debian's faketime)."""
        if not offset:
            return {}
        library = next(iter(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1")), None)
        if library is None:
            raise AssertionError("libfaketime is not installed (apt-get install faketime)")
        # The monotonic clock moves by the same offset (harmless: only differences of it are used).
        # FAKETIME_DONT_FAKE_MONOTONIC=1 would break time.sleep: libfaketime 0.9.10 then answers
        # Python's absolute clock_nanosleep with EINVAL, and every job failed with "OSError: [Errno 22]".
        return {"LD_PRELOAD": str(library), "FAKETIME": offset}

    def active(self, timeout: float = 3.0) -> dict[str, list]:
        """``celery inspect active`` asked from the api host through the broker: each worker that
        answered within ``timeout`` (its node name) with the tasks it runs. A worker answers only
        from its running event loop, once its consumer is connected and consuming again."""
        command = ["celery", "-A", "taskhub", "inspect", "active", "--json", "--timeout", str(timeout)]
        result = subprocess.run(
            self.on_host("api", command),
            cwd=BASE_DIR,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        replies = [line for line in result.stdout.splitlines() if line.startswith("{")]
        return json.loads(replies[-1]) if replies else {}

    def wait_serving(self, *hosts: str, timeout: float, idle: bool = False) -> float:
        """Wait until the job worker of each of ``hosts`` answers (``active``: it consumes) and, when
        ``idle``, runs no task; the seconds it took. Fails naming what a worker still runs."""
        start, nodes = time.monotonic(), {f"celery@{host}" for host in hosts}

        def serving() -> bool:
            answers = self.active()
            return all(node in answers and not (idle and answers[node]) for node in nodes)

        try:
            wait_for(serving, timeout=timeout, interval=0.5, message=f"{sorted(nodes)} to consume{' idle' * idle}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answers: {self.active()}") from None
        return round(time.monotonic() - start, 1)

    def logs(self, host: str, kind: str = "worker") -> str:
        return "".join(p.output() for p in self.processes if p.host == host and p.kind == kind)

    def close(self) -> None:
        for host in HOSTS:
            self.resume(host)  # a stopped process takes no SIGKILL until continued on some kernels
        for process in self.processes:
            process.stop()
        if self.postgres:
            try:
                self.postgres.close()
            except subprocess.SubprocessError:
                shutil.rmtree(self.postgres.dir, ignore_errors=True)
        if self.redis:
            self.redis.close()
        if self.rabbitmq:
            self.rabbitmq.close()
        for host in HOSTS:
            _kill_namespace(self.ns(host))
        _kill_namespace(self.switch)
        # The processes' logs outlive the bed, for a failed scenario's post-mortem.
        logs = REPORT_DIR / "logs" / self.tag
        logs.mkdir(parents=True, exist_ok=True)
        for log in self.dir.glob("*.log"):
            shutil.copy(log, logs / log.name)
        shutil.rmtree(self.dir, ignore_errors=True)


def build_bed(broker: str = "redis") -> Bed:
    """A bed with its network and servers up (no taskhub process yet); closed on any failure."""
    cleanup_leftovers()
    bed = Bed(broker)
    try:
        bed.build_network().start_servers()
    except BaseException:
        bed.close()
        raise
    return bed
