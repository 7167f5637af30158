#!/usr/bin/env python
"""No starvation: low-priority jobs start within JOB_PRIORITY_MAX_WAIT under a steady high stream.

The processes run exactly as the Procfile starts them, with production defaults: one worker
(prefork, WORKER_CONCURRENCY=2: two pool processes, queues high_priority,default,low_priority,
polled in that order), beat and the maintenance worker (the sweep, and its promotion of jobs that
waited too long: jobs/services/promotion.py). For ``--duration`` seconds (default 900, 15 minutes)
the high_priority queue is topped up every half second to ``--high-backlog`` waiting high jobs
(``long_running_task(seconds=1)``), so both pool processes are always busy with high jobs and a
message on low_priority would never be taken. Low jobs (the same task) are submitted along the
way: ``--low-at-start`` at once, then one every ``--low-every`` seconds for as long as they can
still reach their bound before the end (duration - bound - a minute).

Printed: each low job's wait (created -> started), the max and median against the bound
(JOB_PRIORITY_MAX_WAIT, the production default unless ``--max-wait``), how many were promoted
before they started (all of them, if the high stream really starves low_priority), and how many
high jobs ran. Exits 1 when a low job waited longer than the bound or never started.

Own database taskhub_bench_starvation, own Redis db (BENCH_STARVATION_REDIS_DB, default 5; with
BENCH_REDIS_URL pointing at a Redis of its own if other people use the shared one).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(
    database="taskhub_bench_starvation", redis_db=int(os.environ.get("BENCH_STARVATION_REDIS_DB", "5"))
)

HIGH = {"name": "high", "task_type": "bench", "celery_task_name": "long_running_task", "priority": "high"}
LOW = {"name": "low", "task_type": "bench", "celery_task_name": "long_running_task", "priority": "low"}
SETTLE = 60.0  # seconds kept after the last low job's bound, for it to start and be measured


def options(parser) -> None:
    parser.add_argument("--duration", type=float, default=900.0, help="seconds of high stream (default 900)")
    parser.add_argument(
        "--max-wait", default=None, help="JOB_PRIORITY_MAX_WAIT for the processes (default: the setting's default)"
    )
    parser.add_argument("--high-seconds", type=int, default=1, help="how long each high job runs (default 1)")
    parser.add_argument("--high-backlog", type=int, default=20, help="high jobs kept waiting (default 20)")
    parser.add_argument("--low-at-start", type=int, default=5, help="low jobs submitted at the start (default 5)")
    parser.add_argument("--low-every", type=float, default=20.0, help="then one low job every N s (default 20)")


def main() -> int:
    args = common.parse_args(__doc__, options)
    if args.quick:
        args.duration, args.max_wait, args.low_at_start, args.low_every = 150.0, "60", 2, 10.0
    env = {"WORKER_CONCURRENCY": "2", "LOG_LEVEL": "WARNING"}
    if args.max_wait is not None:
        env["JOB_PRIORITY_MAX_WAIT"] = os.environ["JOB_PRIORITY_MAX_WAIT"] = str(args.max_wait)
    with common.bench_environment(ENV):
        import redis
        from django.conf import settings

        from jobs.models import Job, JobEvent, JobEventKind, JobStatus
        from jobs.services.creation import job_create_bulk

        bound = settings.JOB_PRIORITY_MAX_WAIT
        if not bound:
            raise SystemExit("JOB_PRIORITY_MAX_WAIT is 0 (off): nothing to measure")
        low_until = args.duration - bound - SETTLE
        if low_until < 0:
            raise SystemExit(f"--duration {args.duration:g}s is shorter than the bound {bound:g}s + {SETTLE:g}s")
        owner = common.make_user("bench-starvation")
        broker = redis.Redis.from_url(ENV.broker_url)
        high = {**HIGH, "kwargs": {"seconds": args.high_seconds}}
        low = {**LOW, "kwargs": {"seconds": 0}}

        print(
            f"# JOB_PRIORITY_MAX_WAIT {bound:g}s, JOB_SWEEP_INTERVAL {settings.JOB_SWEEP_INTERVAL:g}s; "
            f"{args.duration:g}s of high jobs ({args.high_seconds}s each, {args.high_backlog} kept waiting); "
            f"{args.low_at_start} low jobs at the start, then one every {args.low_every:g}s until {low_until:.0f}s"
        )
        processes = [
            common.Process(common.procfile_command("worker"), env=env, label="worker"),
            common.Process(common.procfile_command("maintenance"), env=env, label="maintenance"),
            common.Process(common.procfile_command("beat"), env=env, label="beat"),
        ]
        try:
            for process in processes[:2]:
                process.start(ready=lambda out: " ready." in out)
            processes[2].start(ready=lambda out: "beat: Starting" in out)
            started_at = time.monotonic()
            next_low, low_ids = started_at + args.low_every, []

            def top_up() -> None:
                missing = args.high_backlog - broker.llen("high_priority")
                if missing > 0:
                    job_create_bulk(owner=owner, items=[high] * missing)

            top_up()
            time.sleep(2)  # both pool processes busy with high jobs before the first low job
            low_ids += [job.id for job in job_create_bulk(owner=owner, items=[low] * args.low_at_start)]
            while (elapsed := time.monotonic() - started_at) < args.duration:
                top_up()
                if elapsed < low_until and time.monotonic() >= next_low:
                    low_ids += [job.id for job in job_create_bulk(owner=owner, items=[low])]
                    next_low += args.low_every
                time.sleep(0.5)
            elapsed = time.monotonic() - started_at
        finally:
            for process in processes:
                process.stop()
        rows = list(Job.objects.filter(id__in=low_ids).values("id", "created_at", "started_at"))
        promoted = dict(
            JobEvent.objects.filter(job_id__in=low_ids, kind=JobEventKind.PROMOTED).values_list("job_id", "at")
        )
        high_ran = Job.objects.filter(name="high", started_at__isnull=False).count()
        high_done = Job.objects.filter(name="high", status=JobStatus.SUCCEEDED).count()
        failed = Job.objects.filter(status=JobStatus.FAILED).count()
        for process in processes:
            process.close()
        broker.close()

    waits = [(row["started_at"] - row["created_at"]).total_seconds() for row in rows if row["started_at"]]
    never = len(rows) - len(waits)
    before_promotion = sum(1 for row in rows if row["started_at"] and row["id"] not in promoted)
    promoted_then = [
        (row["started_at"] - promoted[row["id"]]).total_seconds()
        for row in rows
        if row["started_at"] and row["id"] in promoted
    ]
    common.print_table(
        f"low jobs under a steady high stream for {elapsed:.0f}s (2 worker processes, as in the Procfile)",
        ["figure", "value"],
        [
            ["JOB_PRIORITY_MAX_WAIT, s (the bound)", bound],
            ["low jobs submitted", len(rows)],
            ["low jobs started", len(waits)],
            ["low jobs never started", never],
            ["low jobs started without being promoted", before_promotion],
            ["low wait (created -> started), max s", max(waits) if waits else float("nan")],
            ["low wait, p50 s", statistics.median(waits) if waits else float("nan")],
            ["low wait, min s", min(waits) if waits else float("nan")],
            ["promoted -> started, max s", max(promoted_then) if promoted_then else float("nan")],
            ["high jobs started", high_ran],
            ["high jobs succeeded", high_done],
            ["failed jobs", failed],
        ],
    )
    over = [wait for wait in waits if wait > bound]
    print(
        f"\nratios: max low wait {max(waits) if waits else float('nan'):.1f}s vs bound {bound:g}s; "
        f"{len(over)} over the bound, {never} never started; {high_ran} high jobs ran"
    )
    return 1 if over or never or not waits else 0


if __name__ == "__main__":
    sys.exit(main())
