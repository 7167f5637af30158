#!/usr/bin/env python
"""Priority queues under a backlog: an urgent job overtakes 1,000 queued normal jobs.

The worker runs exactly as the Procfile starts it (prefork, concurrency 2, queues
high_priority,default,low_priority; the Redis transport polls them in that order and each pool
process reserves one message at a time, CELERY_WORKER_PREFETCH_MULTIPLIER=1).

* one urgent job, 15 times: the ``default`` queue is topped up to 1,000 normal jobs
  (``long_running_task(seconds=0)``, created with ``job_create_bulk``), then one urgent job is
  created (``job_create``, priority ``urgent``): how long from its creation to its start
  (``started_at - created_at``, both stamped on this machine's clock) and how many normal jobs
  were still queued then;
* a burst: with 1,000 normal jobs queued, 50 urgent jobs are created in one ``job_create_bulk``;
  how many normal jobs started between the first and the last urgent start (should be none: only
  the messages the pool processes had already reserved, at most the concurrency, may start after
  the burst was sent and before the first urgent job).

Own database taskhub_bench_priority, own Redis db 3.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_priority", redis_db=3)

BACKLOG = 1_000
BURST = 50
NORMAL = {"name": "backlog", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
URGENT = {**NORMAL, "name": "urgent", "priority": "urgent"}
JOB_ENV = {"JOB_HEARTBEAT_INTERVAL": "5", "JOB_PROGRESS_MIN_INTERVAL": "0.5", "LOG_LEVEL": "WARNING"}


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.005)
    return value


def main() -> int:
    args = common.parse_args(__doc__)
    trials = 5 if args.quick else 15
    with common.bench_environment(ENV):
        import redis

        from jobs.models import Job, JobStatus
        from jobs.services.creation import job_create, job_create_bulk

        # Urgent is an operator's right (jobs.submit_urgent), as in production.
        owner = common.make_user("bench-priority", permissions=("submit_urgent",))
        broker = redis.Redis.from_url(ENV.broker_url)

        def queued_normal() -> int:
            return broker.llen("default")

        def top_up() -> int:
            missing = BACKLOG - queued_normal()
            for first in range(0, max(0, missing), 500):
                job_create_bulk(owner=owner, items=[NORMAL] * min(500, missing - first))
            return queued_normal()

        print(f"# load average at the start: {common.load_average()}")
        worker = common.Process(
            common.procfile_command("worker"), env={"WORKER_CONCURRENCY": "2", **JOB_ENV}, label="worker"
        )
        worker.start(ready=lambda out: " ready." in out)
        try:
            waits, backlogs = [], []
            for _ in range(trials):
                backlogs.append(top_up())
                urgent = job_create(owner=owner, **URGENT)
                started = wait_for(
                    lambda urgent=urgent: Job.objects.filter(id=urgent.id).values_list("started_at", flat=True)[0],
                    30,
                    "the urgent job to start",
                )
                waits.append((started - urgent.created_at).total_seconds())
            queued_at_burst = top_up()
            burst = job_create_bulk(owner=owner, items=[URGENT] * BURST)
            sent = burst[0].created_at
            ids = [job.id for job in burst]
            wait_for(lambda: Job.objects.filter(id__in=ids, started_at__isnull=False).count() == BURST, 60, "the burst")
            starts = sorted(Job.objects.filter(id__in=ids).values_list("started_at", flat=True))
            normal = Job.objects.filter(name="backlog")
            overtaken = normal.filter(started_at__gt=starts[0], started_at__lt=starts[-1]).count()
            reserved = normal.filter(started_at__gt=sent, started_at__lte=starts[0]).count()
            still_queued = queued_normal()
        finally:
            worker.stop()
            worker.close()
            broker.close()
        failed = Job.objects.exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.PENDING, JobStatus.RUNNING]).count()
        if failed:
            raise SystemExit(f"{failed} jobs failed")

    ms = [wait * 1000 for wait in waits]
    common.print_table(
        f"one urgent job behind ~{BACKLOG:,} queued normal jobs, {trials} times (worker as in the Procfile)",
        ["figure", "value"],
        [
            ["normal jobs queued when the urgent one was created (median)", statistics.median(backlogs)],
            ["urgent: created -> started, median ms", statistics.median(ms)],
            ["urgent: created -> started, max ms", max(ms)],
        ],
    )
    common.print_table(
        f"a burst of {BURST} urgent jobs (one bulk create) with {queued_at_burst:,} normal jobs queued",
        ["figure", "value"],
        [
            ["first urgent start after the burst was created, ms", (starts[0] - sent).total_seconds() * 1000],
            ["last urgent start after the burst was created, ms", (starts[-1] - sent).total_seconds() * 1000],
            ["normal jobs started before the first urgent one (already reserved)", reserved],
            ["normal jobs started between the first and the last urgent start", overtaken],
            ["normal jobs still queued after the burst", still_queued],
        ],
    )
    print(f"# load average at the end: {common.load_average()}")
    print(
        f"\nratios: urgent start median {statistics.median(ms):.0f} ms behind {statistics.median(backlogs):,.0f} "
        f"queued (target <= 100 ms); burst of {BURST}: {overtaken} normal jobs started in between (target 0)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
