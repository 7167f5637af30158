"""Run one peer end to end, in its own virtualenv and its own database, and measure it.

A :class:`Peer` says how the peer is installed (``requirements-<name>.txt``, the Python it needs),
how its schema is made, how its worker(s) start and how a finished job shows in its own store.
:func:`run_peer` creates the database ``taskhub_bench_peer_<name>``, makes the schema, starts the
workers (2 job slots in all), starts the enqueuer (``bench.peers._enqueuer``, in the peer's
virtualenv), warms up with 50 jobs, then times ``n`` jobs enqueued in bulk from the moment the
enqueuer is told to go until the store shows all of them finished (polled every 20 ms). CPU comes
from /proc (the peer's processes: workers and enqueuer; the PostgreSQL backends of its database
except the poller's; redis-server for the Redis-brokered peer; the whole machine), WAL bytes and
index entries from :class:`bench._common.WalMeter`, rows kept from a count of the peer's tables
after the run. The database is dropped at the end.

Runs in taskhub's virtualenv (it needs Django set up for the WalMeter's connection): see run.py.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import _common as common

HERE = Path(__file__).resolve().parent
VENVS = common.ROOT / "var" / "bench-venvs"
# The Celery peer's broker, and the plain Celery and taskhub phases' of run.py: db 6 unless
# BENCH_PEERS_REDIS_DB names another of the benchmarks' dbs (1-6; _common.configure checks).
REDIS_DB = int(os.environ.get("BENCH_PEERS_REDIS_DB", "6"))
WARMUP = 50
POLL = 0.02


@dataclass(frozen=True)
class Peer:
    name: str  # the venv's folder, the requirements file's suffix, the database's suffix
    label: str  # the table's row
    python: str  # "3.11" or "3.12"
    app: str  # the module of bench.peers.apps the enqueuer loads
    workers: tuple[str, ...]  # shell command lines, the venv's bin first on PATH
    done_sql: str  # count of jobs finished successfully, in the peer's own store
    kept_tables: tuple[str, ...]  # tables whose rows stay after a job (rows kept per job)
    distributions: tuple[str, ...]  # whose versions the fingerprint prints
    setup: tuple[str, ...] = ()  # shell command lines making the schema
    uses_redis: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return f"taskhub_bench_peer_{self.name}"

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def requirements(self) -> Path:
        return HERE / f"requirements-{self.name}.txt"

    def environment(self) -> dict[str, str | None]:
        """The peer's processes' environment: taskhub's settings removed, the venv's bin first on PATH."""
        return {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(common.ROOT),
            "PEER": self.name,
            "PEER_DATABASE_URL": f"{common.POSTGRES_URL}/{self.database}",
            "PEER_BROKER_URL": f"{common.REDIS_URL}/{REDIS_DB}",
            "DJANGO_SETTINGS_MODULE": "bench.peers.apps.djproject.settings",
            "DATABASE_URL": None,
            "CELERY_BROKER_URL": None,
            "CELERY_RESULT_BACKEND": None,
            "VIRTUAL_ENV": str(self.venv),
            **self.env,
        }


def find_python(version: str) -> str:
    """An interpreter of ``version`` (e.g. "3.12"): this one, pyenv's, the system's."""
    candidates = []
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates.append(sys.executable)
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}", shutil.which(f"python{version}")]
    for candidate in candidates:
        if not candidate:
            continue
        if subprocess.run([candidate, "-c", "import venv"], capture_output=True, check=False).returncode == 0:
            return candidate
    raise RuntimeError(f"no Python {version} found (looked for pyenv's, /usr/bin and PATH's python{version})")


def ensure_venv(peer: Peer) -> Path:
    """var/bench-venvs/<peer> with the pinned requirements; made again when the requirements file changes."""
    stamp = peer.venv / ".requirements-sha256"
    wanted = hashlib.sha256(peer.requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and (peer.venv / "bin" / "python").exists():
        return peer.venv
    print(f"# {peer.name}: creating {peer.venv.relative_to(common.ROOT)} (Python {peer.python})", flush=True)
    shutil.rmtree(peer.venv, ignore_errors=True)
    subprocess.run([find_python(peer.python), "-m", "venv", str(peer.venv)], check=True)
    pip = [str(peer.venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(peer.requirements)], check=True)
    stamp.write_text(wanted)
    return peer.venv


def versions(peer: Peer) -> str:
    code = (
        "import importlib.metadata as m, sys; "
        f"print(' '.join(f'{{d}} {{m.version(d)}}' for d in {list(peer.distributions)!r}), "
        "'Python', sys.version.split()[0])"
    )
    out = subprocess.run(
        [str(peer.venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return out.strip()


def _run_shell(peer: Peer, command: str) -> None:
    env = {**os.environ, **peer.environment()}
    env = {key: value for key, value in env.items() if value is not None}
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=common.ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        output = f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        raise RuntimeError(f"{peer.name}: {command!r} failed ({done.returncode}):\n{output}")


class Enqueuer:
    """``python -m bench.peers._enqueuer <app>`` in the peer's venv, driven over stdin."""

    def __init__(self, peer: Peer):
        env = {**os.environ, **peer.environment(), "PYTHONUNBUFFERED": "1"}
        self.log = tempfile.TemporaryFile(mode="w+")  # its logging (django-q2 logs every enqueue)
        self.process = subprocess.Popen(
            [str(peer.venv / "bin" / "python"), "-m", "bench.peers._enqueuer", f"bench.peers.apps.{peer.app}"],
            cwd=common.ROOT,
            env={key: value for key, value in env.items() if value is not None},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        line = self.process.stdout.readline().strip()
        if line != word:
            self.process.kill()
            code = self.process.wait()
            self.log.seek(0)
            raise RuntimeError(f"enqueuer said {line!r} (exit {code}) instead of {word!r}:\n{self.log.read()[-2000:]}")

    def send(self, count: int) -> None:
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()

    def wait(self) -> None:
        self._expect("done")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _wait_done(conn, sql: str, total: int, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while True:
        done = conn.execute(sql).fetchone()[0]
        if done >= total:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {total - done} of {total} jobs not finished after {timeout:.0f}s")
        time.sleep(POLL)


def _measure_wal(peer: Peer, wal: common.WalMeter, start: str, end: str) -> dict[str, float]:
    """Read the WAL before the database is dropped (WalMeter's slot holds it until then)."""
    written = wal.measure(start, end)
    if any(value != value for value in written.values()):  # nan: say why pg_waldump read nothing
        why = subprocess.run(
            [str(wal.bin), "-p", str(wal.wal_dir), "-s", start, "-e", end, "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"# {peer.name}: pg_waldump {start}..{end}: {why.stderr.strip()[-500:]}", file=sys.stderr)
    return written


def run_peer(peer: Peer, n: int) -> dict:
    """One timed run of ``n`` jobs (after a warm-up of 50) on a fresh database; the figures per job."""
    import psycopg

    common._create_database(peer.database)
    if peer.uses_redis:
        common._flush_redis(f"{common.REDIS_URL}/{REDIS_DB}")
    workers: list[common.Process] = []
    enqueuer = None
    try:
        for command in peer.setup:
            _run_shell(peer, command)
        for index, command in enumerate(peer.workers):
            process = common.Process(command, env=peer.environment(), label=f"{peer.name}-worker{index}")
            workers.append(process.start(ready=lambda _out: True))
        enqueuer = Enqueuer(peer)
        with psycopg.connect(f"{common.POSTGRES_URL}/{peer.database}", autocommit=True) as conn:
            poller = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            enqueuer.send(WARMUP)
            enqueuer.wait()
            _wait_done(conn, peer.done_sql, WARMUP, 120, f"{peer.name} warm-up")
            wal = common.WalMeter(peer.database)
            redis_pid = common.redis_server_pid() if peer.uses_redis else None

            def snapshot() -> dict:
                own = [pid for worker in workers for pid in worker.pids()] + [enqueuer.process.pid]
                backends = [pid for pid in common.postgres_backend_pids(peer.database) if pid != poller]
                return {
                    "processes": sum(common.cpu_seconds(own).values()),
                    "postgres": common.cpu_seconds(backends),
                    "redis": sum(common.cpu_seconds([redis_pid]).values()) if redis_pid else 0.0,
                    "machine": common.machine_cpu_seconds(),
                }

            before = snapshot()
            wal_start = wal.lsn()
            started = time.perf_counter()
            enqueuer.send(n)
            finished = _wait_done(conn, peer.done_sql, WARMUP + n, 120 + n / 10, peer.name)
            after = snapshot()
            wal_end = wal.lsn()
            enqueuer.wait()
            written = _measure_wal(peer, wal, wal_start, wal_end)
            kept = {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in peer.kept_tables}
    except BaseException:
        for worker in workers:
            print(f"--- {worker.label}\n{worker.output()[-2000:]}", file=sys.stderr)
        raise
    finally:
        if enqueuer:
            enqueuer.close()
        for worker in workers:
            worker.close()
        common._drop_database(peer.database)
    postgres = sum(seconds - before["postgres"].get(pid, 0.0) for pid, seconds in after["postgres"].items())
    cpu = {
        "processes": after["processes"] - before["processes"],
        "postgres": postgres,
        "redis": after["redis"] - before["redis"],
        "machine": after["machine"] - before["machine"],
    }
    total = WARMUP + n
    return {
        "rate": n / (finished - started),
        "seconds": finished - started,
        "cpu_ms": {key: value * 1000 / n for key, value in cpu.items()},
        "wal": {key: value / n for key, value in written.items()},
        "kept": {table: rows / total for table, rows in kept.items()},
    }
