#!/usr/bin/env python
"""End to end with a real Celery worker: job throughput vs plain Celery tasks, and rows per job.

One `celery worker` (taskhub.testing.WorkerProcess, prefork, concurrency 2, the production
JOB_* defaults) on this benchmark's own database and Redis db 12, started once per phase:

* baseline: N messages of ``bench.noop`` (bench/noop_tasks.py, a plain Celery task with no
  job bookkeeping; the worker imports it with ``-I bench.noop_tasks``), published with
  apply_async; done when all N results are SUCCESS in the result backend (django-db, as for
  jobs);
* jobs: N ``long_running_task(seconds=0)`` jobs created with jobs.services.creation.job_create_bulk
  (500 per call, sent after commit); done when all N job rows are ``succeeded``.

The clock runs from the first publish/create to the last completion, polled every 50 ms in
the same way for both. Rows written per task come from PostgreSQL's pg_stat_user_tables
(n_tup_ins/n_tup_upd deltas over the phase, read after the worker has exited so that its
statistics are flushed, warm-up tasks included in the divisor) and from counting JobEvent rows.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_worker", redis_db=12)

TABLES = ("jobs_job", "jobs_jobevent", "django_celery_results_taskresult")
WARMUP = 20
BATCH = 500
POLL = 0.05
SUCCEEDED_IN = re.compile(r"\] succeeded in ([0-9.]+)s")
# The production defaults (.env.example), not the short test values WorkerProcess sets.
WORKER_ENV = {
    "JOB_HEARTBEAT_INTERVAL": "5",
    "JOB_STALE_AFTER": "60",
    "JOB_CANCEL_GRACE_SECONDS": "30",
    "JOB_PROGRESS_MIN_INTERVAL": "0.5",
    "LOG_LEVEL": "INFO",
}


def start_worker():
    from taskhub.testing import WorkerProcess

    worker = WorkerProcess(
        broker_url=ENV.broker_url,
        database_url=ENV.database_url,
        concurrency=2,
        env=WORKER_ENV,
        name=f"bench-{os.getpid()}-{time.monotonic_ns() % 100_000}",
    )
    worker.args += ["-I", "bench.noop_tasks"]
    started = time.perf_counter()
    worker.start(ready_timeout=60)
    if "bench.noop" not in worker.output():
        worker.stop()
        raise SystemExit("the worker did not register bench.noop (-I bench.noop_tasks)")
    return worker, time.perf_counter() - started


def wait_until(count_done, count_failed, target: int, timeout: float, what: str) -> float:
    """Poll until ``count_done() >= target``; the perf_counter time it was first seen."""
    deadline = time.monotonic() + timeout
    while True:
        done = count_done()
        if done >= target:
            return time.perf_counter()
        failed = count_failed()
        if failed:
            raise SystemExit(f"{what}: {failed} failed")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: only {done} of {target} done after {timeout:.0f}s")
        time.sleep(POLL)


def run_phase(label: str, n: int, publish, count_done, count_failed) -> dict:
    """Start a worker, warm it up, time ``publish(n)`` until all are done, stop it; counters too."""
    before = common.table_counters(TABLES)
    worker, ready_s = start_worker()
    try:
        base = count_done()
        publish(WARMUP)
        wait_until(count_done, count_failed, base + WARMUP, 60, f"{label} warm-up")
        started = time.perf_counter()
        publish(n)
        published = time.perf_counter()
        finished = wait_until(count_done, count_failed, base + WARMUP + n, 60 + n / 10, label)
    except BaseException:
        print(worker.output()[-3000:], file=sys.stderr)
        raise
    finally:
        worker.stop()
        runtimes = [float(seconds) for seconds in SUCCEEDED_IN.findall(worker.output())]
        worker.log.unlink(missing_ok=True)
    delta = common.counter_delta(before, common.table_counters(TABLES))
    return {
        "label": label,
        "n": n,
        "ready_s": ready_s,
        "publish_s": published - started,
        "total_s": finished - started,
        "rate": n / (finished - started),
        "rows": delta,
        "tasks": n + WARMUP,
        # Celery's own "Task ... succeeded in 0.0123s" log line: time spent inside the task call
        # (for a job: the task base's start/progress/success writes around the function).
        "runtime_ms": statistics.median(runtimes) * 1000 if runtimes else float("nan"),
    }


def main() -> int:
    args = common.parse_args(__doc__, lambda p: p.add_argument("-n", type=int, help="messages per phase"))
    n = args.n or (300 if args.quick else 2_000)
    with common.bench_environment(ENV):
        from django_celery_results.models import TaskResult

        from bench.noop_tasks import noop
        from jobs.models import Job, JobEvent, JobStatus
        from jobs.services.creation import job_create_bulk

        owner = common.make_user("bench-worker")

        def publish_noop(count: int) -> None:
            for index in range(count):
                noop.apply_async(args=[index])

        noop_results = TaskResult.objects.filter(task_name="bench.noop")
        baseline = run_phase(
            "bench.noop (plain Celery task)",
            n,
            publish_noop,
            lambda: noop_results.filter(status="SUCCESS").count(),
            lambda: noop_results.filter(status="FAILURE").count(),
        )

        item = {
            "name": "bench",
            "task_type": "bench",
            "celery_task_name": "long_running_task",
            "kwargs": {"seconds": 0},
        }

        def create_jobs(count: int) -> None:
            for first in range(0, count, BATCH):
                job_create_bulk(owner=owner, items=[item] * min(BATCH, count - first))

        jobs = run_phase(
            "jobs: long_running_task(seconds=0) via job_create_bulk",
            n,
            create_jobs,
            lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count(),
            lambda: Job.objects.filter(status__in=[JobStatus.FAILED, JobStatus.REVOKED]).count(),
        )
        job_count = Job.objects.count()
        events_per_job = JobEvent.objects.count() / job_count
        event_kinds = sorted(set(JobEvent.objects.values_list("kind", flat=True)))
        unsent = Job.objects.filter(dispatched_at__isnull=True).count()

    common.print_table(
        f"throughput, {n:,} messages per phase, 1 worker x concurrency 2 (warm-up of {WARMUP} first)",
        ["phase", "publish/create s", "until all done s", "tasks/s", "task call ms (median, worker log)"],
        [[p["label"], p["publish_s"], p["total_s"], p["rate"], p["runtime_ms"]] for p in (baseline, jobs)],
    )
    rows = []
    totals = {}
    for phase in (baseline, jobs):
        per = {t: {k: v / phase["tasks"] for k, v in c.items()} for t, c in phase["rows"].items()}
        totals[phase["label"]] = sum(c["ins"] + c["upd"] for c in per.values())
        rows.append(
            [phase["label"].split(" (")[0].split(":")[0]]
            + [f"{per[t]['ins']:.2f} / {per[t]['upd']:.2f} ({per[t]['hot']:.2f})" for t in TABLES]
            + [totals[phase["label"]]]
        )
    common.print_table(
        "rows written per task: inserted / updated (of which HOT), pg_stat_user_tables deltas over the phase",
        ["phase", *TABLES, "rows written"],
        rows,
    )
    print(
        f"\n  JobEvent rows per job (counted): {events_per_job:.2f} ({', '.join(event_kinds)}); "
        f"jobs never marked sent: {unsent}"
    )
    print(
        f"\nratios: plain Celery / jobs throughput = {common.ratio(baseline['rate'], jobs['rate'])} "
        f"({baseline['rate']:.0f} vs {jobs['rate']:.0f} tasks/s); rows written per task: jobs / plain = "
        f"{common.ratio(totals[jobs['label']], totals[baseline['label']])} "
        f"({totals[jobs['label']]:.1f} vs {totals[baseline['label']]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
