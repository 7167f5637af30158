#!/usr/bin/env python
"""Progress throttling: a task calling self.progress 10,000 times in a tight loop, run eagerly.

The task (``bench.chatty``, bench/chatty_tasks.py) runs in this process through the real task
base: ``task.apply(task_id=str(job.id))`` on a job made with jobs.services.creation.job_create, so it
is marked running, runs its watchdog thread, and is marked succeeded. Compared:

* throttled: the default JOB_PROGRESS_MIN_INTERVAL (0.5 s), counted from the start's write; a
  report still held when the run ends is written with its success (no statement of its own);
* baseline: JOB_PROGRESS_MIN_INTERVAL=0, every progress call writes.

Each setting runs twice: once inside CaptureQueriesContext to count the UPDATE statements
of the task's thread, once without it for the wall time and PostgreSQL's own count of
updated jobs_job rows (n_tup_upd, which also sees the watchdog thread's heartbeat writes).
JOB_HEARTBEAT_INTERVAL keeps its default (5 s).

Own database taskhub_bench_progress, own Redis db 4 (job_create publishes the job's message
after commit; nothing consumes it, the task runs here).
"""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_progress", redis_db=4)


def set_clause(sql: str) -> str:
    return sql.split(" WHERE ", 1)[0]


def jobs_index_bytes() -> int:
    """On-disk size of all of jobs_job's indexes (a non-HOT update adds an entry to each)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_relation_size(indexrelid)) FROM pg_index WHERE indrelid = 'jobs_job'::regclass")
        return int(cursor.fetchone()[0])


def run_once(owner, calls: int, *, capture: bool) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.chatty_tasks import chatty
    from jobs.models import Job, JobStatus
    from jobs.services.creation import job_create

    job = job_create(owner=owner, celery_task_name="bench.chatty", kwargs={"calls": calls})
    before = None if capture else common.table_counters(["jobs_job"])
    index_bytes = None if capture else jobs_index_bytes()
    if capture:
        # Django keeps at most 9,000 queries in its log (BaseDatabaseWrapper.queries_limit), and
        # CaptureQueriesContext reads that log: make room for every statement of the run.
        connection.queries_log = collections.deque(maxlen=2 * calls + 1_000)
    context = CaptureQueriesContext(connection) if capture else None
    with context if context is not None else contextlib.nullcontext():
        started = time.perf_counter()
        outcome = chatty.apply(kwargs={"calls": calls}, task_id=str(job.id))
        wall = time.perf_counter() - started
    if not outcome.successful():
        raise SystemExit(f"bench.chatty did not succeed: {outcome.state} {outcome.result!r}")
    job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED or job.progress != 100:
        raise SystemExit(f"job ended {job.status} at {job.progress}%")
    result = {"wall": wall, "task_s": outcome.result["seconds"]}
    if context is not None:
        updates = [q["sql"] for q in context.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
        result["updates"] = len(updates)
        result["progress_updates"] = sum(
            1 for sql in updates if '"progress_meta" =' in set_clause(sql) and '"status" =' not in set_clause(sql)
        )
        result["statements"] = len(context.captured_queries)
    else:
        delta = common.counter_delta(before, common.table_counters(["jobs_job"]))["jobs_job"]
        result["row_updates"], result["hot"] = delta["upd"], delta["hot"]
        result["index_kib"] = (jobs_index_bytes() - index_bytes) / 1024
    Job.objects.filter(id=job.id).delete()
    return result


def main() -> int:
    args = common.parse_args(__doc__, lambda p: p.add_argument("--calls", type=int, help="progress calls per run"))
    calls = args.calls or (2_000 if args.quick else 10_000)
    with common.bench_environment(ENV):
        from django.conf import settings
        from django.db import connection
        from django.test.utils import override_settings

        owner = common.make_user("bench-progress")
        default_interval = settings.JOB_PROGRESS_MIN_INTERVAL
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'jobs_job'")
            (indexes,) = cursor.fetchone()
        results = {}
        run_once(owner, 100, capture=False)  # warm-up: imports, connection, first publish
        for label, interval in (
            (f"throttled (JOB_PROGRESS_MIN_INTERVAL={default_interval:g})", default_interval),
            ("baseline (JOB_PROGRESS_MIN_INTERVAL=0)", 0.0),
        ):
            with override_settings(JOB_PROGRESS_MIN_INTERVAL=interval):
                counted = run_once(owner, calls, capture=True)
                timed = run_once(owner, calls, capture=False)
            results[label] = {
                **counted,
                **{k: v for k, v in timed.items() if k != "wall"},
                "wall": timed["wall"],
                "captured_wall": counted["wall"],
            }
        heartbeat = settings.JOB_HEARTBEAT_INTERVAL

    rows = []
    for label, r in results.items():
        rows.append(
            [
                label,
                calls,
                r["updates"],
                r["progress_updates"],
                r["row_updates"],
                r["hot"],
                r["index_kib"],
                r["wall"],
                calls / r["task_s"],
                r["task_s"] / calls * 1e6,
                r["captured_wall"],
            ]
        )
    common.print_table(
        f"{calls:,} self.progress calls in a tight loop, task.apply() in-process "
        f"(JOB_HEARTBEAT_INTERVAL={heartbeat:g}s; jobs_job has {indexes} indexes)",
        [
            "setting",
            "calls",
            "UPDATEs (task thread)",
            "of them progress",
            "jobs_job rows updated (pg_stat)",
            "of them HOT",
            "index growth KiB",
            "wall s",
            "calls/s",
            "us/call",
            "wall s (captured run)",
        ],
        rows,
    )
    throttled, baseline = results.values()
    # Throttled, a run shorter than the interval writes no progress of its own: the last report
    # goes with the outcome (one statement with the success), so the statement ratio can be n/a.
    writes = common.ratio(baseline["updates"], throttled["updates"])
    rows_updated = common.ratio(baseline["row_updates"], throttled["row_updates"])
    print(
        f"\nratios: writes baseline/throttled = {writes} UPDATE statements "
        f"({baseline['updates']:,} vs {throttled['updates']:,}; n/a: none throttled), {rows_updated} rows updated; "
        f"calls/s throttled/baseline = {common.ratio(baseline['task_s'], throttled['task_s'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
