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

Then the cancel of a big workflow (issue 22: "cancelling a 10,000-step workflow: one transaction <=
500 ms"), no worker: the same fan-out + fan-in of ``--cancel-steps`` steps (10,000; ``--quick``
2,000), its root started (``job_start``, so one step gets the durable cancel), then
``workflow_cancel`` as ``POST /api/v1/workflows/{id}/cancel/`` calls it. Timed per round (3,
``--cancel-rounds``; ``--quick`` 1; a ``VACUUM ANALYZE`` between rounds): the transaction
(``job_workflow_cancel``'s first statement to its COMMIT returned; of it, the time inside its
statements and inside the COMMIT), the whole call (the transaction, its after-commit publishes and
the reads around it), and the statements inside the transaction;
each round checks the rows (every step revoked, the root running with its cancel requested).
``--cancel-only`` runs this part alone.
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


def cancel_once(owner, steps: int) -> dict:
    """Create a fan-out + fan-in of ``steps`` steps, start its root, cancel it: the transaction's and
    the whole call's ms and the transaction's statements."""
    from unittest import mock

    from django.db import connection
    from django.db.models import Count

    from jobs.models import Job, JobStatus, Workflow
    from jobs.services.execution import job_start
    from jobs.workflows import chain, chord, group, step, workflow_cancel, workflow_create
    from jobs.workflows import services as workflow_services

    fan = group(*(step("long_running_task", id=f"s{i}", seconds=0) for i in range(steps - 2)))
    began = time.perf_counter()
    flow = workflow_create(
        owner=owner,
        name="bench-cancel",
        steps=chain(step("long_running_task", id="root", seconds=0), chord(fan, step("gather", id="fan-in"))),
    )
    created = time.perf_counter() - began
    root = Job.objects.get(workflow=flow, workflow_step="root")
    job_start(job_id=root.id, worker="bench@cancel:1")  # one running step: the durable cancel

    moments: dict[str, float] = {}
    statements, in_statements = [0], [0.0]
    real_commit, real_cancel = connection._commit, workflow_services.job_workflow_cancel

    def commit(*args, **kwargs):
        moments.setdefault("commit", time.perf_counter())
        answer = real_commit(*args, **kwargs)
        moments.setdefault("committed", time.perf_counter())  # the transaction's COMMIT returned
        return answer

    def counted(execute, sql, params, many, context):
        statements[0] += 1
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            in_statements[0] += time.perf_counter() - began

    def timed_cancel(**kwargs):
        moments["began"] = time.perf_counter()
        with connection.execute_wrapper(counted):
            return real_cancel(**kwargs)

    began = time.perf_counter()
    with (
        mock.patch.object(connection, "_commit", commit),
        mock.patch.object(workflow_services, "job_workflow_cancel", timed_cancel),
    ):
        workflow_cancel(user=owner, workflow_id=flow.id)
    call = time.perf_counter() - began

    counts = dict(Job.objects.filter(workflow=flow).values_list("status").annotate(n=Count("id")).order_by())
    stopping = Job.objects.filter(id=root.id, cancel_requested_at__isnull=False).exists()
    if counts != {JobStatus.REVOKED: steps - 1, JobStatus.RUNNING: 1} or not stopping:
        raise SystemExit(f"cancel of {steps:,} steps: unexpected statuses {counts}, root stopping {stopping}")
    Job.objects.filter(workflow=flow).delete()
    Workflow.objects.filter(id=flow.id).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # the next round starts without this one's dead rows
    return {
        "create_s": created,
        "transaction_ms": (moments["committed"] - moments["began"]) * 1000,
        "statements_ms": in_statements[0] * 1000,
        "commit_ms": (moments["committed"] - moments["commit"]) * 1000,
        "call_ms": call * 1000,
        "statements": statements[0],
    }


def main() -> int:
    def options(parser):
        parser.add_argument("-n", type=int, help="jobs / steps per phase")
        parser.add_argument("--cancel-steps", type=int, help="steps of the cancelled workflow (10,000)")
        parser.add_argument("--cancel-rounds", type=int, help="cancels timed (3)")
        parser.add_argument("--cancel-only", action="store_true", help="only the cancel of a big workflow")

    args = common.parse_args(__doc__, options)
    n = args.n or (1_000 if args.quick else 10_000)
    cancel_steps = args.cancel_steps or (2_000 if args.quick else 10_000)
    cancel_rounds_n = args.cancel_rounds or (1 if args.quick else 3)
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
        for _ in range(0 if args.cancel_only else 2):
            phases.append(run(f"{n:,} jobs, no workflow", n, plain_jobs))
            phases.append(run(f"{n:,}-step workflow (fan-out + fan-in)", n, workflow))
            Workflow.objects.all().delete()
        cancels = [cancel_once(owner, cancel_steps) for _ in range(cancel_rounds_n)]
    ratios = []
    if phases:
        common.print_table(
            f"end to end, {n:,} no-op jobs per phase, prefork concurrency {CONCURRENCY}",
            ["phase", "create s", "until all done s", "jobs/s"],
            [[p["label"], p["create_s"], p["total_s"], p["rate"]] for p in phases],
        )
        best_jobs = max(p["rate"] for p in phases[0::2])
        best_flow = max(p["rate"] for p in phases[1::2])
        ratios.append(f"workflow / jobs throughput = {best_flow / best_jobs:.2f} (target >= 0.8)")
    common.print_table(
        f"cancel of a {cancel_steps:,}-step workflow (fan-out + fan-in, its root running), no worker",
        ["round", "create s", "transaction ms", "in statements ms", "COMMIT ms", "whole call ms", "statements"],
        [
            [
                str(i),
                c["create_s"],
                c["transaction_ms"],
                c["statements_ms"],
                c["commit_ms"],
                c["call_ms"],
                c["statements"],
            ]
            for i, c in enumerate(cancels, 1)
        ],
    )
    worst = max(c["transaction_ms"] for c in cancels)
    ratios.append(
        f"cancel of {cancel_steps:,} steps: transaction {worst:.0f} ms, worst of {len(cancels)} (target <= 500 ms)"
    )
    print(f"\nratios: {'; '.join(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
