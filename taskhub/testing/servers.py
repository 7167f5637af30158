"""Servers of a test's own, which it may stop, empty and restart without disturbing anyone else's:
a private redis-server, a virtual host on the local RabbitMQ (behind a relay), a private PostgreSQL
cluster.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

from taskhub.testing.network import TcpProxy
from taskhub.testing.processes import free_port, wait_for


class RedisServer:
    """A throwaway redis-server on a free port, that a test can stop and start again.

    ``persistent``: an append-only file written at every command (``appendfsync always``), so a
    restart keeps every message; without it a restart empties the server, as an in-memory Redis does.
    ``netns``: run it in that network namespace (``ip netns exec``), listening on ``host`` (the bed's
    db host, taskhub/testing/hosts/); it also listens on a Unix socket in its folder.
    """

    def __init__(
        self, *, persistent: bool = False, netns: str = "", host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.host = host
        self.netns = netns
        self.dir = tempfile.mkdtemp(prefix="taskhub-redis-")
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def socket(self) -> str:
        return str(Path(self.dir) / "redis.sock")

    def start(self) -> RedisServer:
        in_netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [
                *in_netns,
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--unixsocket",
                self.socket,
                # Reached from the bed's other hosts: no loopback-only protected mode (the bed has no way out).
                *(("--protected-mode", "no") if self.host != "127.0.0.1" else ()),
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
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(0.5)
                sock.connect(self.socket)
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


# The local RabbitMQ the suite makes its virtual hosts on (.ci/run starts it).
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60)
    return result.stdout


class RabbitMQVhost:
    """A virtual host of its own on the local RabbitMQ (``rabbitmqctl``), reached through a TcpProxy
    so that a test can take "the broker" down for its own processes only."""

    def __init__(
        self, base_url: str = AMQP_URL, *, netns: str = "", host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        parsed = urlsplit(base_url)
        self.credentials = f"{parsed.username or 'guest'}:{parsed.password or 'guest'}"
        self.name = f"taskhub_test_{os.getpid()}_{free_port()}"
        # ``netns``: the relay listens on host:port in that network namespace (the bed's db host).
        self.proxy = TcpProxy((parsed.hostname or "127.0.0.1", parsed.port or 5672), host=host, port=port, netns=netns)

    @property
    def url(self) -> str:
        return f"amqp://{self.credentials}@{self.proxy.host}:{self.proxy.port}/{self.name}"

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
    free port) that a test may stop and restart without disturbing the shared one.

    ``netns``: run it in that network namespace (``ip netns exec``), listening on ``host`` (the bed's
    db host, taskhub/testing/hosts/); ``socket_url`` reaches it from anywhere on this machine."""

    def __init__(self, *, netns: str = "", host: str = "127.0.0.1", port: int | None = None) -> None:
        self.port = port or free_port()
        self.host = host
        self.netns = netns
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
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """Through its Unix socket: from outside its network namespace too."""
        return f"postgres://postgres@{quote(str(self.dir), safe='')}:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        in_netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        subprocess.run([*in_netns, *self._as_postgres, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
            if self.host != "127.0.0.1":  # clients on the other hosts of its network (the bed's /24)
                with (self.data / "pg_hba.conf").open("a") as hba:
                    hba.write(f"host all all {self.host.rsplit('.', 1)[0]}.0/24 trust\n")
        options = f"-p {self.port} -c listen_addresses={self.host} -c unix_socket_directories={self.dir} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"
        )
        return self

    def create_database(self, name: str) -> str:
        """An empty database; returns its URL."""
        self._run(str(self.bin / "createdb"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        """A fast shutdown: open connections are closed, open transactions rolled back."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
