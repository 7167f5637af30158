#!/usr/bin/env python
"""Worker throughput: tracked jobs vs plain Celery, end to end, one run, same machine.

* baseline: ``plain.noop`` (bench/plain_celery.py), a no-op task of a plain Celery app with a
  Redis broker and a **Redis result backend**, ``task_acks_late``, Celery's defaults otherwise;
  its worker is the Procfile's worker command with ``-A bench.plain_celery`` and no ``-Q``
  (same concurrency, same log level). Published with ``apply_async``; done when every result
  is in Redis.
* jobs: ``long_running_task(seconds=0)`` created with ``job_create_bulk`` (what the bulk API
  calls; 500 per call, sent after commit) and run by the worker **exactly as the Procfile starts
  it**, with the production ``JOB_*`` defaults. Done when every job row is ``succeeded`` (its
  start and end recorded; its timeline lines derived from the row, issue 20).

Both clocks run from the first publish/create to the last completion seen (polled every
20 ms), after a warm-up of each worker. Where the CPU went comes from /proc: the worker's
processes, this process (publishing, creating, polling), the PostgreSQL backends of the
benchmark database, redis-server, and the whole machine (which includes anyone else's work:
see the load average). Rows written per job come from pg_stat_user_tables, read after the
worker has exited.

SQL statements per job are counted in this process after the phases (a bulk create, then runs
through the task base with Celery's local ``apply``). Each phase also prints how many messages its
worker skipped as not pending: 0 unless someone else's workers share the Redis db (issue 20).

Own database taskhub_bench_throughput, own Redis db 1 (broker and results); on a shared machine run
it with BENCH_REDIS_URL=private (bench/README).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_throughput", redis_db=1)
os.environ["PLAIN_BROKER_URL"] = ENV.broker_url
os.environ["PLAIN_RESULT_BACKEND"] = ENV.broker_url

CONCURRENCY = "2"
WARMUP = 50
BATCH = 500
POLL = 0.02
TABLES = ("jobs_job", "jobs_jobevent", "django_celery_results_taskresult")
SUCCEEDED_IN = re.compile(r"\] succeeded in ([0-9.]+)s")
# The production defaults (.env.example), not the short values of the test suite.
JOB_ENV = {
    "JOB_HEARTBEAT_INTERVAL": "5",
    "JOB_STALE_AFTER": "60",
    "JOB_CANCEL_GRACE_SECONDS": "30",
    "JOB_PROGRESS_MIN_INTERVAL": "0.5",
    "LOG_LEVEL": "INFO",
}


def worker_commands() -> tuple[str, str]:
    """The Procfile's worker line, and the same line for the plain Celery app (no -Q: its default queue)."""
    taskhub = common.procfile_command("worker")
    plain, found = re.subn(r"-A taskhub\b", "-A bench.plain_celery", taskhub)
    plain = re.sub(r"\s-Q\s+\S+", "", plain)
    if not found:
        raise SystemExit(f"cannot derive the plain Celery worker from the Procfile line {taskhub!r}")
    return taskhub, plain


def wait_until(last_done, count_left, timeout: float, what: str) -> float:
    """Poll until nothing is left; the perf_counter time that was first seen.

    Cheap polls first (is the last one submitted done?), the full count only then: the polling
    shares the machine with what it measures. Tasks finish roughly in the order they were sent.
    """
    deadline = time.monotonic() + timeout
    while not last_done() or count_left():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {count_left()} not done after {timeout:.0f}s")
        time.sleep(POLL)
    return time.perf_counter()


SKIPPED = "is not pending, not due yet or of another attempt"


def diagnosis(worker: common.Process) -> str:
    """Why a phase may not have finished: jobs its worker skipped, and anyone else on its Redis db
    (their workers take this benchmark's messages and skip them: the jobs are not in their database)."""
    skipped = worker.output().count(SKIPPED)
    others = common.redis_db_clients(ENV.broker_url, own_pids=[os.getpid(), *worker.pids()])
    shared = (
        f"{len(others)} other client(s) on {ENV.broker_url}: {common.describe_clients(others)}; "
        "point BENCH_REDIS_URL at a Redis of your own"
        if others
        else f"nobody else on {ENV.broker_url}"
    )
    return f"the worker skipped {skipped} message(s) as '{SKIPPED}'; {shared}"


class CpuMeter:
    """CPU seconds per group of processes between two snapshots."""

    def __init__(self, worker: common.Process):
        self.worker = worker
        self.redis_pid = common.redis_server_pid()

    def snapshot(self) -> dict[str, float]:
        postgres = common.cpu_seconds(common.postgres_backend_pids(ENV.database))
        pids = self.worker.pids()
        return {
            "consumer": sum(common.cpu_seconds(pids[:1]).values()),
            "pool": sum(common.cpu_seconds(pids[1:]).values()),
            "postgres": postgres,
            "redis": sum(common.cpu_seconds([self.redis_pid]).values()) if self.redis_pid else float("nan"),
            "bench": time.process_time(),
            "machine": common.machine_cpu_seconds(),
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict[str, float]:
        postgres = sum(seconds - before["postgres"].get(pid, 0.0) for pid, seconds in after["postgres"].items())
        return {
            key: postgres if key == "postgres" else after[key] - before[key]
            for key in ("consumer", "pool", "postgres", "redis", "bench", "machine")
        }


def run_phase(label: str, command: str, env: dict, n: int, submit, last_done, count_left, wal=None) -> dict:
    """``submit(count)`` sends tasks; ``last_done()``: is the last one sent done; ``count_left()``: how many are not."""
    worker = common.Process(command, env={"WORKER_CONCURRENCY": CONCURRENCY, **env}, label="worker")
    worker.start(ready=lambda out: " ready." in out)
    try:
        submit(WARMUP)
        wait_until(last_done, count_left, 60, f"{label} warm-up")
        meter = CpuMeter(worker)
        before = meter.snapshot()
        wal_start = wal.lsn() if wal else None
        started = time.perf_counter()
        submit(n)
        submitted = time.perf_counter()
        finished = wait_until(last_done, count_left, 60 + n / 20, label)
        cpu = meter.delta(before, meter.snapshot())
        wal_end = wal.lsn() if wal else None
    except BaseException:
        print(worker.output()[-3000:], file=sys.stderr)
        print(f"# {diagnosis(worker)}", file=sys.stderr)
        raise
    finally:
        worker.stop()
        runtimes = [float(seconds) for seconds in SUCCEEDED_IN.findall(worker.output())]
        skipped = worker.output().count(SKIPPED)
        worker.close()
    return {
        "label": label,
        "submit_s": submitted - started,
        "total_s": finished - started,
        "rate": n / (finished - started),
        "cpu_ms": {key: value * 1000 / n for key, value in cpu.items()},
        "call_ms": statistics.median(runtimes) * 1000 if runtimes else float("nan"),
        "skipped": skipped,
        "wal": {key: value / n for key, value in wal.measure(wal_start, wal_end).items()} if wal else None,
        "wal_by_relation": {name: size / n for name, size in wal.by_relation.items()} if wal else None,
    }


def plain_phase(command: str, n: int) -> dict:
    import redis

    from bench.plain_celery import app, noop

    client = redis.Redis.from_url(ENV.broker_url)
    ids: list[str] = []

    def submit(count: int) -> None:
        for index in range(count):
            task_id = str(uuid.uuid4())
            ids.append(task_id)
            noop.apply_async(args=[index], task_id=task_id)

    unseen = {"left": [], "checked": 0}  # ids not seen done yet; ids[checked:] not checked yet

    def last_done() -> bool:
        return bool(client.exists(f"celery-task-meta-{ids[-1]}"))

    def count_left() -> int:
        candidates = unseen["left"] + ids[unseen["checked"] :]
        unseen["checked"] = len(ids)
        pipe = client.pipeline(transaction=False)
        for task_id in candidates:
            pipe.exists(f"celery-task-meta-{task_id}")
        unseen["left"] = [task_id for task_id, done in zip(candidates, pipe.execute(), strict=True) if not done]
        return len(unseen["left"])

    try:
        # Celery reads CELERY_BROKER_URL / CELERY_RESULT_BACKEND from the environment before its
        # configuration: the plain worker gets none of taskhub's settings.
        plain_env = {"CELERY_BROKER_URL": None, "CELERY_RESULT_BACKEND": None, "DJANGO_SETTINGS_MODULE": None}
        phase = run_phase(
            "plain Celery: no-op task, Redis results", command, plain_env, n, submit, last_done, count_left
        )
        failed = [i for i in ids if b'"FAILURE"' in (client.get(f"celery-task-meta-{i}") or b"")]
        if failed:
            raise SystemExit(f"plain Celery: {len(failed)} tasks failed")
        return phase
    finally:
        client.close()
        app.close()


def jobs_phase(command: str, n: int, label: str, env: dict, owner) -> tuple[dict, dict]:
    """The jobs phase; the table is emptied afterwards so that the next phase counts its own rows."""
    from jobs.models import Job, JobEvent, JobStatus
    from jobs.services.creation import job_create_bulk

    item = {"name": "bench", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
    last: list = []

    def submit(count: int) -> None:
        for first in range(0, count, BATCH):
            last[:] = job_create_bulk(owner=owner, items=[item] * min(BATCH, count - first))[-1:]

    def last_done() -> bool:
        return Job.objects.filter(id=last[0].id, status=JobStatus.SUCCEEDED).exists()

    def count_left() -> int:
        if failed := Job.objects.filter(status__in=[JobStatus.FAILED, JobStatus.REVOKED]).count():
            raise SystemExit(f"taskhub jobs: {failed} failed")
        return Job.objects.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING]).count()

    succeeded = Job.objects.filter(status=JobStatus.SUCCEEDED)
    rows_before = common.table_counters(TABLES)
    wal = common.WalMeter(ENV.database)
    phase = run_phase(label, command, {**JOB_ENV, **env}, n, submit, last_done, count_left, wal=wal)
    rows = common.counter_delta(rows_before, common.table_counters(TABLES))
    jobs = Job.objects.count()
    unfinished = jobs - succeeded.count()
    if unfinished:
        raise SystemExit(f"taskhub jobs: {unfinished} jobs did not succeed")
    kinds = sorted(set(JobEvent.objects.values_list("kind", flat=True)))
    written = {
        "per_job": {table: {k: v / jobs for k, v in counts.items()} for table, counts in rows.items()},
        "events_per_job": JobEvent.objects.count() / jobs,
        "kinds": kinds,
    }
    Job.objects.all().delete()
    return phase, written


def statements_per_job(owner, runs: int = 50) -> dict[str, float]:
    """SQL statements per job (each a round trip to PostgreSQL), in this process: a bulk create of
    BATCH jobs, then ``runs`` of them run through the task's own code (Celery's local ``apply``, the
    same task base a worker's pool process runs: start, progress, success). Savepoints apart."""
    from django.db import connection

    from jobs.models import Job, JobStatus
    from jobs.services.creation import job_create_bulk
    from jobs.tasks.common_tasks import long_running_task

    item = {"name": "bench", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
    counts = {"all": 0, "savepoints": 0}

    def counted(execute, sql, params, many, context):
        counts["all"] += 1
        counts["savepoints"] += sql.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO"))
        return execute(sql, params, many, context)

    def run(job) -> None:
        long_running_task.apply(kwargs={"seconds": 0}, task_id=str(job.id))

    jobs = job_create_bulk(owner=owner, items=[item] * (runs + 1))
    run(jobs.pop())  # the per-process caches (rate limits, workers alive) are read on first use
    with connection.execute_wrapper(counted):
        job_create_bulk(owner=owner, items=[item] * BATCH)
    create = dict(counts)
    counts.update(all=0, savepoints=0)
    with connection.execute_wrapper(counted):
        for job in jobs[:runs]:
            run(job)
    if (done := Job.objects.filter(id__in=[job.id for job in jobs[:runs]], status=JobStatus.SUCCEEDED).count()) < runs:
        raise SystemExit(f"statements per job: {runs - done} of {runs} local runs did not succeed")
    Job.objects.all().delete()
    return {
        "create": (create["all"] - create["savepoints"]) / BATCH,
        "run": (counts["all"] - counts["savepoints"]) / runs,
        "savepoints": create["savepoints"] / BATCH + counts["savepoints"] / runs,
    }


def main() -> int:
    args = common.parse_args(__doc__, lambda p: p.add_argument("-n", type=int, help="tasks per phase"))
    n = args.n or (1_000 if args.quick else 5_000)
    taskhub_worker, plain_worker = worker_commands()
    with common.bench_environment(ENV):
        print(f"# load average at the start: {common.load_average()}")
        print(f"# taskhub worker: {taskhub_worker}\n# plain worker:   {plain_worker}")
        owner = common.make_user("bench-throughput")
        plain = plain_phase(plain_worker, n)
        jobs, written = jobs_phase(taskhub_worker, n, "taskhub jobs: long_running_task(0)", {}, owner)
        # The same without live progress publishing (jobs/live.py): what that feature costs.
        quiet, _ = jobs_phase(
            taskhub_worker, n, "taskhub jobs, JOB_EVENTS_REDIS_URL=none", {"JOB_EVENTS_REDIS_URL": "none"}, owner
        )
        # The same without prepared statements (DATABASE_PREPARED_STATEMENTS, as behind an old PgBouncer).
        unprepared, _ = jobs_phase(
            taskhub_worker,
            n,
            "taskhub jobs, DATABASE_PREPARED_STATEMENTS=false",
            {"DATABASE_PREPARED_STATEMENTS": "false"},
            owner,
        )
        plain_again = plain_phase(plain_worker, n)  # the baseline again: the machine's load moves
        statements = statements_per_job(owner)
    phases = (plain, jobs, quiet, unprepared, plain_again)
    best_plain = max(plain, plain_again, key=lambda phase: phase["rate"])
    common.print_table(
        f"throughput, {n:,} tasks per phase, prefork concurrency {CONCURRENCY} (after a warm-up of {WARMUP})",
        ["phase", "submit s", "until all done s", "tasks/s", "task call ms (median)", "skipped"],
        [[p["label"], p["submit_s"], p["total_s"], p["rate"], p["call_ms"], p["skipped"]] for p in phases],
    )
    common.print_table(
        "CPU ms per task (/proc): the worker's main process (consumer) and pool processes; bench = this process "
        "(submit + polling); machine = every process on the machine, anyone's",
        ["phase", "consumer", "pool", "postgres", "redis", "bench", "machine"],
        [
            [p["label"], *(p["cpu_ms"][k] for k in ("consumer", "pool", "postgres", "redis", "bench", "machine"))]
            for p in phases
        ],
    )
    per_job = written["per_job"]
    common.print_table(
        "rows written per job, first jobs phase (pg_stat_user_tables, warm-up included): inserted / updated (HOT)",
        ["table", "inserted", "updated", "HOT"],
        [[table, per_job[table]["ins"], per_job[table]["upd"], per_job[table]["hot"]] for table in TABLES],
    )
    print(f"\n  timeline rows per job: {written['events_per_job']:.2f} ({', '.join(written['kinds'])})")
    print(
        f"  SQL statements per job (in-process: a bulk create of {BATCH}, then runs through the task base): "
        f"{statements['create'] + statements['run']:.2f} = create {statements['create']:.3f} + run "
        f"{statements['run']:.2f} (and {statements['savepoints']:.2f} SAVEPOINT/RELEASE)"
    )
    common.print_table(
        "WAL per job in the benchmark's database (pg_waldump between the phase's first submit and its last "
        "completion; full-page images included): bytes, records, B-tree index entries (GIN's "
        "pending-list appends are in the bytes by relation below)",
        ["phase", "WAL bytes", "without full pages", "WAL records", "B-tree index entries"],
        [
            [p["label"], *(p["wal"][key] for key in ("bytes", "record_bytes", "records", "index_entries"))]
            for p in (jobs, quiet, unprepared)
        ],
    )
    common.print_table(
        "WAL bytes per job by relation (first jobs phase)",
        ["relation", "bytes"],
        sorted(jobs["wal_by_relation"].items(), key=lambda item: -item[1]) or [["(no WAL read)", float("nan")]],
    )
    print(f"# load average at the end: {common.load_average()}")
    print(
        f"\nratios: taskhub jobs / plain Celery (Redis results) = {jobs['rate'] / best_plain['rate']:.2f} "
        f"({jobs['rate']:.0f} vs {best_plain['rate']:.0f} tasks/s, the better of two baseline runs); "
        f"without live publishing {quiet['rate'] / best_plain['rate']:.2f}; without prepared statements "
        f"{unprepared['rate'] / best_plain['rate']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
