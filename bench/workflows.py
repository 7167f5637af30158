#!/usr/bin/env python
"""Workflows end to end: N no-op steps as one fan-out + fan-in vs the same N jobs without a workflow.

* jobs: N ``long_running_task(seconds=0)`` created with ``job_create_bulk`` (500 per call), as
  bench/throughput.py does;
* workflow: one root, N - 2 ``long_running_task(seconds=0)`` steps after it and one ``gather`` step
  after all of them (which reads their N - 2 results), created with ``jobs.workflows.workflow_create``
  (one call: the graph checked, then written in one transaction).

Each phase runs on the worker exactly as the Procfile starts it (prefork concurrency 2, the
production ``JOB_*`` defaults), clocked from the create call to the last step seen succeeded
(polled every 20 ms); the phases alternate jobs, workflow, jobs, workflow in one run and the ratio
uses each kind's better run (the machine is shared). Own database taskhub_bench_workflows, own Redis
db 4 (BENCH_WORKFLOWS_REDIS_DB).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

# BENCH_WORKFLOWS_REDIS_DB: another benchmark Redis db than 4 (when someone else's benchmark uses it).
ENV = common.configure(
    database="taskhub_bench_workflows", redis_db=int(os.environ.get("BENCH_WORKFLOWS_REDIS_DB", "4"))
)
CONCURRENCY = "2"
BATCH = 500
POLL = 0.02
JOB_ENV = {
    "JOB_HEARTBEAT_INTERVAL": "5",
    "JOB_STALE_AFTER": "60",
    "JOB_CANCEL_GRACE_SECONDS": "30",
    "JOB_PROGRESS_MIN_INTERVAL": "0.5",
    "LOG_LEVEL": "WARNING",
}


def run(label: str, n: int, create) -> dict:
    from jobs.models import Job, JobStatus

    worker = common.Process(
        common.procfile_command("worker"), env={"WORKER_CONCURRENCY": CONCURRENCY, **JOB_ENV}, label="worker"
    )
    worker.start(ready=lambda out: " ready." in out)
    try:
        started = time.perf_counter()
        last = create()
        created = time.perf_counter()
        deadline = time.monotonic() + 120 + n / 10
        while (
            not Job.objects.filter(id=last, status=JobStatus.SUCCEEDED).exists()
            or Job.objects.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING]).exists()
        ):
            if Job.objects.filter(status__in=[JobStatus.FAILED, JobStatus.REVOKED]).exists():
                raise SystemExit(f"{label}: a job failed")
            if time.monotonic() > deadline:
                raise SystemExit(f"{label}: not done in time")
            time.sleep(POLL)
        finished = time.perf_counter()
    except BaseException:
        print(worker.output()[-3000:], file=sys.stderr)
        raise
    finally:
        worker.stop()
        worker.close()
    Job.objects.all().delete()
    return {
        "label": label,
        "create_s": created - started,
        "total_s": finished - started,
        "rate": n / (finished - started),
    }


def main() -> int:
    args = common.parse_args(__doc__, lambda p: p.add_argument("-n", type=int, help="jobs / steps per phase"))
    n = args.n or (1_000 if args.quick else 10_000)
    with common.bench_environment(ENV):
        from jobs.models import Job, Workflow
        from jobs.services.creation import job_create_bulk
        from jobs.workflows import chain, chord, group, step, workflow_create

        print(f"# load average at the start: {common.load_average()}")
        owner = common.make_user("bench-workflows")
        item = {"name": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}

        def plain_jobs():
            last = None
            for first in range(0, n, BATCH):
                last = job_create_bulk(owner=owner, items=[item] * min(BATCH, n - first))[-1].id
            return last

        def workflow():
            fan = group(*(step("long_running_task", id=f"s{i}", seconds=0) for i in range(n - 2)))
            flow = workflow_create(
                owner=owner,
                name="bench",
                steps=chain(step("long_running_task", id="root", seconds=0), chord(fan, step("gather", id="fan-in"))),
            )
            return Job.objects.get(workflow=flow, workflow_step="fan-in").id

        phases = []
        for _ in range(2):
            phases.append(run(f"{n:,} jobs, no workflow", n, plain_jobs))
            phases.append(run(f"{n:,}-step workflow (fan-out + fan-in)", n, workflow))
            Workflow.objects.all().delete()
    common.print_table(
        f"end to end, {n:,} no-op jobs per phase, prefork concurrency {CONCURRENCY}",
        ["phase", "create s", "until all done s", "jobs/s"],
        [[p["label"], p["create_s"], p["total_s"], p["rate"]] for p in phases],
    )
    best_jobs = max(p["rate"] for p in phases[0::2])
    best_flow = max(p["rate"] for p in phases[1::2])
    print(f"\nratios: workflow / jobs throughput = {best_flow / best_jobs:.2f} (target >= 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
