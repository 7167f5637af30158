"""What every benchmark shares: its own database and Redis db, Django setup, timing and tables.

A benchmark calls :func:`configure` at import time, before anything imports Django settings,
then runs inside ``with bench_environment(env):``. That creates the script's own PostgreSQL
database (dropped first if a killed run left it behind), migrates it, empties the script's
own Redis db, and on the way out drops the database and empties the Redis db again. The
names are fixed per script and must start with ``taskhub_bench``: a benchmark never touches
``taskhub`` or the test databases, whatever DATABASE_URL the caller (``make bench``) set.

PostgreSQL and Redis are found at BENCH_POSTGRES_URL (default
postgres://postgres@127.0.0.1:5432) and BENCH_REDIS_URL (default redis://127.0.0.1:6379;
``private``: a redis-server of the run's own, on a free port). A Redis db that anyone else is
connected to is refused (``check_redis_db_free``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# Redis dbs the benchmarks may flush: 0 is the app's default, 7 and up belong to test suites.
BENCH_REDIS_DBS = range(1, 7)
SECRET_KEY = "bench-only-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class BenchEnv:
    database: str
    redis_db: int

    @property
    def database_url(self) -> str:
        return f"{POSTGRES_URL}/{self.database}"

    @property
    def broker_url(self) -> str:
        return f"{REDIS_URL}/{self.redis_db}"


def configure(*, database: str, redis_db: int) -> BenchEnv:
    """Point this process (and the workers it starts) at the benchmark's own database and Redis db.

    ``BENCH_DATABASE_TAG`` (letters, digits, ``_``) puts a tag into the name, ``taskhub_bench_<tag>_...``:
    two people on one cluster can run the same script at once without dropping each other's database."""
    if not database.startswith("taskhub_bench"):
        raise SystemExit(f"refusing to use database {database!r}: benchmark databases start with taskhub_bench")
    if tag := os.environ.get("BENCH_DATABASE_TAG", ""):
        if not re.fullmatch(r"[a-z0-9_]{1,20}", tag):
            raise SystemExit(f"BENCH_DATABASE_TAG={tag!r}: use 1-20 lowercase letters, digits or _")
        database = f"taskhub_bench_{tag}{database.removeprefix('taskhub_bench')}"
    if redis_db not in BENCH_REDIS_DBS:
        raise SystemExit(f"refusing Redis db {redis_db}: benchmarks use dbs 1-6 (others: the app, the tests)")
    global REDIS_URL  # noqa: PLW0603 - read at call time by every script (common.REDIS_URL)
    if REDIS_URL == "private":
        REDIS_URL = _start_private_redis()
    env = BenchEnv(database, redis_db)
    os.environ["DJANGO_SETTINGS_MODULE"] = "taskhub.settings"
    os.environ["DATABASE_URL"] = env.database_url
    os.environ["CELERY_BROKER_URL"] = env.broker_url
    os.environ["CELERY_RESULT_BACKEND"] = "django-db"
    os.environ["SECRET_KEY"] = SECRET_KEY
    os.environ["DEBUG"] = "false"
    os.environ["ALLOWED_HOSTS"] = "localhost,127.0.0.1,testserver"  # testserver: Django's test client
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("TASKHUB_VAR_DIR", str(ROOT / "var" / "bench"))
    return env


def _start_private_redis() -> str:
    """``BENCH_REDIS_URL=private``: a redis-server of this run's own on a free port, no persistence,
    stopped when this process exits (and when it is killed: the kernel sends it SIGTERM then)."""
    import atexit

    def die_with_parent() -> None:
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only the prctl call, before exec
    )

    def stop() -> None:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)

    atexit.register(stop)
    url = f"redis://127.0.0.1:{port}"
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return url
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"BENCH_REDIS_URL=private: redis-server on port {port} did not start") from None
            time.sleep(0.05)


def parse_args(description: str | None, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 30 seconds)")
    if extra:
        extra(parser)
    return parser.parse_args()


# --- database and broker ------------------------------------------------------------------------


def _admin_connection():
    import psycopg

    return psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True, connect_timeout=5)


def _drop_database(name: str) -> None:
    from psycopg import sql

    with _admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(name: str) -> None:
    from psycopg import sql

    _drop_database(name)
    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def _socket_ports(pids: Iterable[int]) -> set[int]:
    """The local TCP ports of the sockets these processes hold open (from /proc; this machine only)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def redis_db_clients(url: str, *, own_pids: Iterable[int] = ()) -> list[dict[str, str]]:
    """The other clients connected to the Redis db of ``url`` (``CLIENT LIST``): not this connection,
    not the connections of ``own_pids`` (the benchmark's own workers). Anyone else there shares the
    benchmark's broker: their workers take its messages, its workers take theirs, and its flush
    empties their queues."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        me = client.client_id()
        db = client.connection_pool.connection_kwargs.get("db", 0)
        clients = client.client_list()
    finally:
        client.close()
    own_ports = _socket_ports(own_pids)
    return [
        found
        for found in clients
        if int(found.get("db", -1)) == db
        and int(found["id"]) != me
        and int(found.get("addr", ":0").rsplit(":", 1)[1]) not in own_ports
    ]


def describe_clients(clients: list[dict[str, str]], limit: int = 5) -> str:
    shown = ", ".join(f"{found['addr']} (last command {found.get('cmd', '?')})" for found in clients[:limit])
    return shown + (f" and {len(clients) - limit} more" if len(clients) > limit else "")


def check_redis_db_free(url: str) -> None:
    """Refuse a Redis db that someone else is connected to (a test suite's workers, another
    benchmark): sharing it would mix both sides' messages and the flush would empty their queues."""
    if clients := redis_db_clients(url):
        raise SystemExit(
            f"refusing {url}: {len(clients)} other client(s) are connected to that Redis db "
            f"({describe_clients(clients)}), e.g. a test suite's or another benchmark's workers. Their "
            "workers would take this benchmark's messages (and skip them: the jobs are not in their "
            "database) and the flush would empty their queues. Point BENCH_REDIS_URL at a Redis of your "
            'own, e.g. `redis-server --port 6394 --save "" --appendonly no --daemonize yes` and '
            "BENCH_REDIS_URL=redis://127.0.0.1:6394."
        )


@contextlib.contextmanager
def bench_environment(env: BenchEnv) -> Iterator[None]:
    """Own database (created, migrated, dropped) and own Redis db (flushed before and after; refused
    when anyone else is connected to it)."""
    check_redis_db_free(env.broker_url)
    _flush_redis(env.broker_url)
    _create_database(env.database)
    try:
        started = time.perf_counter()
        import django

        django.setup()
        from django.conf import settings

        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        print(
            f"# database {env.database} created and migrated in {time.perf_counter() - started:.1f}s; "
            f"broker {env.broker_url} (flushed)"
        )
        print(f"# {machine_line()}")
        yield
    finally:
        print(f"# load average at the end: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            from taskhub.celery import app

            app.close()
        try:
            _drop_database(env.database)
        except Exception as exc:  # noqa: BLE001 - report, do not hide the benchmark's own error
            print(f"# WARNING: could not drop database {env.database}: {exc}", file=sys.stderr)
        try:
            _flush_redis(env.broker_url)
        except Exception as exc:  # noqa: BLE001
            print(f"# WARNING: could not flush {env.broker_url}: {exc}", file=sys.stderr)


def machine_line() -> str:
    from django.db import connection

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        check=False,
        capture_output=True,
        text=True,
    )
    version = (
        f"{connection.pg_version // 10000}.{connection.pg_version % 10000}"
        if connection.vendor == "postgresql"
        else "?"
    )
    state = " (working tree modified)" if dirty.stdout.strip() else ""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, PostgreSQL {version}, "
        f"commit {commit.stdout.strip() or '?'}{state}, load average {load}"
    )


def make_user(username: str, *, is_staff: bool = False, permissions: Sequence[str] = ()):
    """A benchmark's user without quotas; ``is_staff`` reads everyone's jobs (``jobs.view_job``);
    ``permissions``: more of the jobs app's codenames (``submit_urgent``: priority urgent)."""
    from django.contrib.auth.models import Permission

    from accounts.models import User

    # No quota (0): the benchmarks load the engine far past one user's default share, and measure
    # what the workers can do, not one user's fair share of them (a batch user an operator trusts).
    user = User(
        username=username,
        email=f"{username}@bench.invalid",
        is_staff=is_staff,
        max_active_jobs=0,
        max_jobs_per_minute=0,
        max_running_jobs=0,
    )
    user.set_unusable_password()  # the real hasher costs ~0.3 s, and nobody logs in here
    user.save()
    # Staff see every user's jobs only with jobs.view_job (docs/SECURITY.md): the benchmarks'
    # staff user reads as an operator does.
    codenames = [*(["view_job"] if is_staff else []), *permissions]
    if codenames:
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))
    return user


# --- PostgreSQL's per-table counters -----------------------------------------------------------


def table_counters(tables: Iterable[str]) -> dict[str, dict[str, int]]:
    """n_tup_ins/upd/hot_upd/del per table, after flushing this backend's pending statistics.

    PostgreSQL 15+ flushes a backend's table statistics at most once a second while it works,
    and when it exits: other processes' writes are complete only once they have disconnected
    (stop the worker first). ``pg_stat_force_next_flush()`` flushes this backend's now.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.pg_version >= 150000:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.5 if connection.pg_version >= 150000 else 1.5)
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s)",
            [list(tables)],
        )
        rows = cursor.fetchall()
    found = {name: {"ins": ins, "upd": upd, "hot": hot, "del": dele} for name, ins, upd, hot, dele in rows}
    return {name: found.get(name, {"ins": 0, "upd": 0, "hot": 0, "del": 0}) for name in tables}


def counter_delta(before: dict, after: dict) -> dict[str, dict[str, int]]:
    return {table: {key: after[table][key] - before[table][key] for key in after[table]} for table in after}


# --- WAL written for one database ---------------------------------------------------------------


class WalMeter:
    """WAL bytes and index entries written for one database between two points, from ``pg_waldump``.

    The cluster is shared (other databases write WAL at the same time): the records are read back
    with ``pg_waldump`` and only those of relations in this database count (their ``rel
    TABLESPACE/DATABASE/RELATION``), with their full size (full-page images included). Index entries
    are the B-tree insert records among them (GIN's appear in the bytes by relation). Neither moves
    with the machine's noise; compare commits with them. Needs read access to the cluster's
    ``pg_wal`` (root, or the postgres user); where that is missing the figures are ``nan``.
    """

    RECORD = re.compile(r"rmgr: (\w+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+),.*?desc: (\w+).*?rel \d+/(\d+)/(\d+)")

    def __init__(self, database: str):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT oid FROM pg_database WHERE datname = %s", [database])
            self.oid = str(cursor.fetchone()[0])
            cursor.execute("SHOW data_directory")
            self.wal_dir = Path(cursor.fetchone()[0]) / "pg_wal"
            cursor.execute("SHOW server_version_num")
            self.bin = Path(f"/usr/lib/postgresql/{int(cursor.fetchone()[0]) // 10000}/bin/pg_waldump")

    SLOT = f"taskhub_bench_wal_{os.getpid()}"

    def lsn(self) -> str:
        """The current WAL position. The first call also keeps the WAL from there on until
        ``measure`` (a temporary replication slot): a busy shared cluster may recycle segments
        within a minute, before ``pg_waldump`` reads them."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.SLOT])
            if cursor.fetchone() is None:
                cursor.execute("SELECT pg_create_physical_replication_slot(%s, true, true)", [self.SLOT])
            cursor.execute("SELECT pg_current_wal_insert_lsn()")
            return cursor.fetchone()[0]

    def _release(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                [self.SLOT],
            )

    def dump(self, start: str, end: str) -> str:
        """``pg_waldump``'s text of the cluster's WAL between two LSNs (every database's records: the
        caller keeps this one's), or "" when it cannot be read (said on stderr). Lets the WAL go."""
        try:
            done = subprocess.run(
                [str(self.bin), "-p", str(self.wal_dir), "-s", start, "-e", end],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"# pg_waldump: {exc}", file=sys.stderr)
            return ""
        finally:
            self._release()
        if not done.stdout:
            print(f"# pg_waldump: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return done.stdout

    def measure(self, start: str, end: str) -> dict[str, float]:
        """``bytes``, ``records`` and ``index_entries`` of this database between two LSNs, and
        ``record_bytes``: the bytes without full-page images. A page's first change after a
        checkpoint logs the whole page; when the cluster's checkpoints come is the machine's
        business (other databases' WAL moves them), so these move between runs and the records
        themselves do not."""
        totals = {"bytes": 0.0, "record_bytes": 0.0, "records": 0.0, "index_entries": 0.0}
        self.by_relation: dict[str, float] = {}
        out = self.dump(start, end)
        if not out:
            return {key: float("nan") for key in totals}
        for match in self.RECORD.finditer(out):
            rmgr, record_size, size, desc, oid, relfilenode = match.groups()
            if oid != self.oid:
                continue
            self.by_relation[relfilenode] = self.by_relation.get(relfilenode, 0) + int(size)
            totals["bytes"] += int(size)
            totals["record_bytes"] += int(record_size)
            totals["records"] += 1
            if (rmgr == "Btree" and desc in ("INSERT_LEAF", "INSERT_POST")) or (
                rmgr == "Gin" and desc in ("INSERT", "INSERT_LISTPAGE")
            ):
                totals["index_entries"] += 1
        self.by_relation = self._named(self.by_relation)
        return totals

    @staticmethod
    def _named(sizes: dict[str, float]) -> dict[str, float]:
        """Relation file numbers to relation names (``?NNN`` for files no longer in pg_class)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relfilenode::text, relname FROM pg_class WHERE relfilenode::text = ANY(%s)", [list(sizes)]
            )
            names = dict(cursor.fetchall())
        return {names.get(node, f"?{node}"): size for node, size in sizes.items()}


# --- timing and output -------------------------------------------------------------------------


def interleaved(functions: dict[str, Callable[[], object]], rounds: int, *, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds per call of each function, called round-robin ``rounds`` times."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    timings: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - started)
    return timings


def median_ms(timings: Sequence[float]) -> float:
    return statistics.median(timings) * 1000


def p90_ms(timings: Sequence[float]) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * 1000


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    rows = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print(
        "  "
        + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    )
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  "
            + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator else "n/a"


# --- processes started as the Procfile starts them ------------------------------------------------


def procfile_command(name: str) -> str:
    """The Procfile's command line of process ``name`` (``web``, ``worker``), unchanged."""
    from honcho import environ

    return environ.parse_procfile((ROOT / "Procfile").read_text()).processes[name]


class Process:
    """A shell command run in its own session (as honcho runs a Procfile line), its output in a file."""

    def __init__(self, command: str, *, env: dict[str, str | None], label: str):
        """``env`` is added to this process's environment; a None value removes the variable."""
        self.command, self.label = command, label
        # The virtualenv's bin first, as `make run` puts it (the Procfile names bare celery / uvicorn).
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        merged = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1", **env}
        self.env = {name: value for name, value in merged.items() if value is not None}
        self.log = Path(tempfile.mkstemp(prefix=f"taskhub-bench-{label}-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, *, ready: Callable[[str], bool], timeout: float = 60.0) -> Process:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not ready(self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.output()[-3000:]
                self.stop()
                raise SystemExit(f"{self.label} did not start ({self.command}):\n{tail}")
            time.sleep(0.1)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> list[int]:
        """This process and all its descendants (a worker's pool, uvicorn's workers)."""
        if not self.process:
            return []
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in children.read_text().split())
        return found

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the process (a warm shutdown: it stops its own children), then SIGKILL the group."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)


# --- where the CPU goes ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process (from /proc; a process gone is left out)."""
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def machine_cpu_seconds() -> float:
    """CPU seconds used by the whole machine so far (every process, everyone's): busy time in /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def postgres_backend_pids(database: str) -> list[int]:
    """The server processes of the connections open on ``database`` (this machine's PostgreSQL)."""
    with _admin_connection() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]).fetchall()
    return [pid for (pid,) in rows]


def redis_server_pid() -> int | None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        return int(client.info("server")["process_id"])
    except Exception:  # noqa: BLE001 - a remote Redis: no CPU figure for it
        return None
    finally:
        client.close()


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_web(port: int, env: dict[str, str | None] | None = None) -> Process:
    """The Procfile's web line on ``port`` (WEB_CONCURRENCY=2 unless ``env`` says otherwise), once it answers."""
    import urllib.request

    def answers(_output: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    # Several web processes share their throttle counters (the bench's Redis db), or the web process
    # refuses to start (accounts.E001).
    shared_cache = os.environ.get("CACHE_URL") or os.environ["CELERY_BROKER_URL"]
    web_env = {"TASKHUB_PORT": str(port), "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING", "CACHE_URL": shared_cache}
    web_env.update(env or {})
    return Process(procfile_command("web"), env=web_env, label="web").start(ready=answers, timeout=120)
