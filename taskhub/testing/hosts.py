"""The many-hosts test bed (jobs/tests/hosts/, ``make test-hosts``): taskhub's processes on separate
hosts of one Linux machine, each host a network namespace, all plugged into a bridge that lives in a
namespace of its own (the "switch"). Addresses from 198.18.0.0/24 (RFC 2544's benchmarking range)
and no default route: nothing in the bed can reach anything outside it.

    db       198.18.0.2   a private PostgreSQL cluster (taskhub/testing/servers.py)
             198.18.0.7   a private Redis, the broker (a second address: a host can lose one, not the other)
    api      198.18.0.3   web + beat
    worker1  198.18.0.4   a job worker
    worker2  198.18.0.5   a job worker, the maintenance worker and a second beat
    client   198.18.0.6   the API's clients (scenarios 3 and 4)

Every taskhub process runs its Procfile command (``bash -c``) with the production settings
(``PRODUCTION_RECOVERY``, DEBUG off), started with ``ip netns exec`` and ``unshare --uts`` (each host
has its own host name: ``worker1``, ...). The test process itself stays outside the bed and reads the
database through the cluster's Unix socket; it creates jobs and schedules with ``manage.py shell`` run
on the api host.

Faults, per host: its link down and up (the switch's port), its processes stopped and resumed
(SIGSTOP/SIGCONT), a cut between two hosts (blackhole routes both ways), a host cut from the database
or from the broker alone (blackhole policy rules both ways), a ``tc tbf`` rate limit.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): ``missing_privileges`` says why not, and the suite skips.
Namespaces are named ``thbed-<pid>-<host>``; ``cleanup_leftovers`` removes those of a run that was
killed (its pid gone).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from django.conf import settings

from taskhub.testing.processes import BASE_DIR, PRODUCTION_RECOVERY, wait_for
from taskhub.testing.servers import PostgresServer, RabbitMQVhost, RedisServer

PREFIX = "thbed-"
SUBNET = "198.18.0"
HOSTS = {"db": 2, "api": 3, "worker1": 4, "worker2": 5, "client": 6}
# The db host's services, each at an address of its own.
SERVICES = {"database": f"{SUBNET}.2", "broker": f"{SUBNET}.7"}
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


def missing_privileges() -> str:
    """Why the bed cannot be built here ("" when it can)."""
    if not sys.platform.startswith("linux"):
        return "the many-hosts bed needs Linux network namespaces"
    for tool in ("ip", "unshare", "tc"):
        if not shutil.which(tool):
            return f"the many-hosts bed needs {tool} (iproute2, util-linux)"
    status = Path("/proc/self/status").read_text()
    effective = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.MULTILINE).group(1), 16)
    for cap, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")):
        if not effective & (1 << cap):
            return f"the many-hosts bed needs {name} (run as root): network namespaces, veth pairs, a bridge"
    return ""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace(name: str) -> None:
    """SIGKILL every process in namespace ``name`` (a stopped one too), then delete it."""
    for _ in range(50):
        pids = [int(pid) for pid in ip("netns", "pids", name, check=False).stdout.split()]
        if not pids:
            break
        for pid in pids:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
    ip("netns", "del", name, check=False)


def bed_namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.startswith(PREFIX)]


def cleanup_leftovers() -> list[str]:
    """Remove the namespaces (with their processes, links and bridge) of beds whose test process is gone."""
    removed = []
    for name in bed_namespaces():
        owner = name.removeprefix(PREFIX).split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)) and int(owner) != os.getpid():
            continue  # another bed's, still running
        _kill_namespace(name)
        removed.append(name)
    return removed


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


class Bed:
    """The bed: namespaces, bridge, links, the db host's servers and the Procfile processes."""

    def __init__(self, broker: str = "redis") -> None:
        self.broker = broker
        self.tag = f"{PREFIX}{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix="taskhub-bed-"))
        self.switch = f"{self.tag}-switch"
        self.processes: list[HostProcess] = []
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.rabbitmq: RabbitMQVhost | None = None
        self._cuts: set[tuple[str, str]] = set()

    # -- the network ------------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    @staticmethod
    def address(host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def on_host(self, host: str, args: list[str]) -> list[str]:
        """``args`` as a command run on ``host``: its network namespace and a host name of its own."""
        script = f'hostname {shlex.quote(host)} && exec "$@"'
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "sh", "-c", script, "sh", *args]

    def build_network(self) -> Bed:
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.ns(host)
            ip("netns", "add", ns)
            # The host's eth0 and its port on the switch (named after the host), one veth pair.
            ip("-n", self.switch, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.switch, "link", "set", host, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", self.ns("db"), "addr", "add", f"{SERVICES['broker']}/24", "dev", "eth0")
        return self

    def link_down(self, host: str) -> None:
        """Pull the host's cable at the switch: its packets go nowhere, nothing tells its connections."""
        ip("-n", self.switch, "link", "set", host, "down")

    def link_up(self, host: str) -> None:
        ip("-n", self.switch, "link", "set", host, "up")

    def cut(self, a: str, b: str) -> None:
        """``a`` and ``b`` no longer reach each other (each still reaches every other host)."""
        ip("-n", self.ns(a), "route", "add", "blackhole", f"{self.address(b)}/32")
        ip("-n", self.ns(b), "route", "add", "blackhole", f"{self.address(a)}/32")

    def heal(self, a: str, b: str) -> None:
        ip("-n", self.ns(a), "route", "del", "blackhole", f"{self.address(b)}/32", check=False)
        ip("-n", self.ns(b), "route", "del", "blackhole", f"{self.address(a)}/32", check=False)

    def _discard(self, host: str, *, src: str, dst: str, add: bool = True) -> None:
        """A policy rule on ``host`` that discards its packets from ``src`` to ``dst``."""
        rule = ["from", f"{src}/32", "to", f"{dst}/32", "blackhole"]
        ip("-n", self.ns(host), "rule", "add" if add else "del", *rule, check=add)

    def cut_from(self, host: str, service: str) -> None:
        """``host`` and the db host's ``service`` (database, broker) no longer reach each other; the
        db host's other service still does. Open connections hang as in a partition (their packets
        are discarded, nothing resets them); a new connection fails at once (the route is refused).
        (Discarding a new connection's packets too needs tc's drop action, which this kernel lacks.)"""
        self._discard(host, src=self.address(host), dst=SERVICES[service])
        self._discard("db", src=SERVICES[service], dst=self.address(host))
        self._cuts.add((host, service))

    def reconnect(self) -> None:
        """Every ``cut_from`` undone."""
        for host, service in self._cuts:
            self._discard(host, src=self.address(host), dst=SERVICES[service], add=False)
            self._discard("db", src=SERVICES[service], dst=self.address(host), add=False)
        self._cuts.clear()

    def tc(self, host: str, *args: str, check: bool = True) -> None:
        command = ["ip", "netns", "exec", self.ns(host), "tc", "qdisc", *args]
        subprocess.run(command, check=check, capture_output=True, timeout=30)

    def rate_limit(self, host: str, rate: str = "1mbit") -> None:
        """The host's outgoing traffic limited to ``rate`` (a token bucket, ``tc tbf``)."""
        self.tc(host, "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")

    def unlimit(self, host: str) -> None:
        self.tc(host, "del", "dev", "eth0", "root", check=False)

    def pids(self, host: str) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.ns(host), check=False).stdout.split()]

    def pause(self, host: str) -> list[int]:
        """SIGSTOP every process of the host (a paused VM); the pids stopped."""
        pids = self.pids(host)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def resume(self, host: str) -> None:
        for pid in self.pids(host):
            os.kill(pid, signal.SIGCONT)

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


# -- what the scenarios create, read and record ---------------------------------------------------------

SCHEDULE_SCRIPT = """
import json
from accounts.models import User
from jobs.schedules.services import job_schedule_create
# Every 5 s: a staff user's schedule (others wait at least JOB_SCHEDULE_MIN_INTERVAL_SECONDS).
owner, _ = User.objects.update_or_create(username="bed-staff", defaults={"is_staff": True, "max_running_jobs": 0})
task = job_schedule_create(owner=owner, name="every 5 s", task="long_running_task", kwargs={"seconds": 0},
                           interval={"every": 5, "period": "seconds"})
print(json.dumps(task.id))
"""

DISABLE_SCRIPT = """
import os
from jobs.schedules.services import job_schedule_set_enabled
job_schedule_set_enabled(periodic_task_id=int(os.environ["BED_SCHEDULE"]), enabled=False)
"""


def create_jobs(bed: Bed, count: int, *, seconds: int, max_retries: int = 1) -> list[str]:
    """``count`` long_running_task jobs created on the api host (one transaction, sent before its commit)."""
    from taskhub.testing.faults import CREATE_SCRIPT

    items = [{"celery_task_name": "long_running_task", "args": [seconds], "max_retries": max_retries}] * count
    spec = json.dumps({"items": items, "die_after_commit": False})
    out = bed.manage("shell", "-c", CREATE_SCRIPT, env={"FAULT_CREATE": spec})
    return json.loads(next(line for line in out.splitlines() if line.startswith("[")))


def create_schedule(bed: Bed) -> int:
    """A 5-second schedule (a staff user's), made on the api host; its periodic task's id."""
    out = bed.manage("shell", "-c", SCHEDULE_SCRIPT)
    return int(out.strip().splitlines()[-1])


def disable_schedule(bed: Bed, periodic_task_id: int) -> None:
    bed.manage("shell", "-c", DISABLE_SCRIPT, env={"BED_SCHEDULE": str(periodic_task_id)})


def query(bed: Bed, sql: str, params=()) -> list[tuple]:
    """Rows read by the test process through the cluster's Unix socket (outside the bed's network)."""
    with psycopg.connect(bed.observer_url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def late_changes(bed: Bed, ids: list[str], host: str) -> int:
    """Changes ``host``'s workers made to the jobs after they were re-queued away from them: timeline
    lines written by them after the job's last re-queue, and rows they still hold or finished."""
    by_host = f"worker celery@{host}:%"
    lines = query(
        bed,
        """SELECT count(*) FROM jobs_jobevent e
           WHERE e.job_id = ANY(%s::uuid[]) AND e.actor_label LIKE %s
             AND e.at > (SELECT max(r.at) FROM jobs_jobevent r WHERE r.job_id = e.job_id AND r.kind = 'requeued')""",
        [ids, by_host],
    )[0][0]
    rows = query(
        bed, "SELECT count(*) FROM jobs_job WHERE id = ANY(%s::uuid[]) AND worker LIKE %s", [ids, f"celery@{host}:%"]
    )
    return lines + rows[0][0]


FENCED = re.compile(r"Job ([0-9a-f-]{36}): fenced write refused: the (\w+) of attempt (\d+) changed 0 rows")


def fenced_writes(log: str) -> list[tuple[str, str]]:
    """(job id, write) of every late write the door refused, from a worker's log."""
    return [(m.group(1), m.group(2)) for m in FENCED.finditer(log)]


REPORT_DIR = Path(settings.VAR_DIR) / "hosts"


@dataclasses.dataclass
class Record:
    scenario: str
    broker: str
    jobs: int
    lost: int
    twice: int
    twice_allowed: int
    recovery_s: float
    bound_s: float
    fenced: int | None = None  # late writes refused by fencing (scenarios with a cut-off or paused worker)
    late_changes: int | None = None  # rows those late writes changed (must be 0)
    note: str = ""

    @classmethod
    def settled(cls, request, bed: Bed, *, jobs: list[str], rows: dict[str, dict], **figures) -> Record:
        """The record of a scenario whose ``jobs`` should all have succeeded, from their last ``rows``
        (``taskhub.testing.faults.Observer``): lost and ran-twice counted, the rest as given; saved."""
        return cls(
            scenario=request.function.__name__.removeprefix("test_"),
            broker=bed.broker,
            jobs=len(jobs),
            lost=sum(1 for i in jobs if rows.get(i, {}).get("status") != "succeeded"),
            twice=sum(1 for r in rows.values() if r["started"] > 1),
            **{"twice_allowed": 0, **figures},
        ).save()

    @property
    def command(self) -> str:
        return f"make test-hosts HOSTS_ARGS='-k \"{self.scenario} and {self.broker}\"'"

    def save(self) -> Record:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        record = {**dataclasses.asdict(self), "command": self.command, "at": datetime.now(UTC).isoformat()}
        (REPORT_DIR / f"{self.scenario}-{self.broker}.json").write_text(json.dumps(record, indent=1))
        print(f"\nHOSTS {record}", file=sys.stderr)
        return self


TOKEN_SCRIPT = """
from accounts.models import User
from rest_framework_simplejwt.tokens import RefreshToken
user, _ = User.objects.update_or_create(username="bed-client", defaults={"max_running_jobs": 0})
print(RefreshToken.for_user(user).access_token)
"""

# An API client on the client host: every second a create (POST /api/v1/jobs/) and a readiness probe
# (GET /readyz), each answer a JSON line (when asked, status, error code or job id, seconds taken).
CLIENT_SCRIPT = """
import json, os, sys, time, urllib.error, urllib.request
base, token, until = os.environ["BED_API"], os.environ["BED_TOKEN"], time.time() + float(os.environ["BED_SECONDS"])
body = json.dumps({"celery_task_name": "long_running_task", "args": [1], "max_retries": 0}).encode()
def call(kind, request):
    started = time.time()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    except OSError as exc:
        status, data = 0, json.dumps({"code": type(exc).__name__, "message": str(exc)}).encode()
    try:
        data = json.loads(data)
    except ValueError:
        data = {"code": "not_json", "message": data[:200].decode(errors="replace")}
    print(json.dumps({"kind": kind, "at": started, "took": round(time.time() - started, 2), "status": status,
                      "code": data.get("code"), "id": data.get("id"), "message": data.get("message"),
                      "checks": data.get("checks")}), flush=True)
while time.time() < until:
    started = time.time()
    call("create", urllib.request.Request(f"{base}/api/v1/jobs/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}))
    call("ready", urllib.request.Request(f"{base}/readyz"))
    time.sleep(max(0.0, 1.0 - (time.time() - started)))
"""


class Client:
    """CLIENT_SCRIPT running on the client host for ``seconds``; ``answers()`` reads what it got."""

    def __init__(self, bed: Bed, seconds: float) -> None:
        token = bed.manage("shell", "-c", TOKEN_SCRIPT).strip().splitlines()[-1]
        self.out = bed.dir / "client.jsonl"
        env = bed.env(BED_API=f"http://{bed.address('api')}:8000", BED_TOKEN=token, BED_SECONDS=str(seconds))
        with self.out.open("wb") as handle:
            self.process = subprocess.Popen(
                bed.on_host("client", [sys.executable, "-c", CLIENT_SCRIPT]),
                cwd=BASE_DIR,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        bed.processes.append(self)  # stopped with the bed

    host, kind, name = "client", "client", "client"

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def answers(self) -> list[dict]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def wait(self, timeout: float) -> list[dict]:
        self.process.wait(timeout=timeout)
        return self.answers()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
