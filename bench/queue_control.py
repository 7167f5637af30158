#!/usr/bin/env python
"""What queue control costs a job start, in this process on PostgreSQL (no worker, no broker).

Compared, interleaved round-robin on pending jobs of the same table:

* before: the start as it was before queue control: the conditional UPDATE ... RETURNING and the
  ``started`` line (written here with the ORM: the same WHERE minus the pause check, in a
  transaction, as the door's ORM path writes a transition);
* no control: ``job_start`` today with no pause and no rate limit: the same two statements, the
  UPDATE's WHERE also refusing a paused queue (NOT EXISTS on ``jobs_queuecontrol``), and a lookup
  in the per-process rate-limit cache;
* then, with a queue rate limit set that always has room (10,000 per second on low_priority):
  a start on another queue (the start and the slot check share a transaction: two SAVEPOINT
  statements more), and a start under the limit (one more UPDATE, taking a slot).

Also: the per-process cache lookup alone, and ``paused_queues`` (the one query job_dispatch adds).

Own database taskhub_bench_queues, own Redis db 5 (nothing is published).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_queues", redis_db=5)


def main() -> None:
    args = common.parse_args(__doc__)
    rounds = 300 if args.quick else 2000
    with common.bench_environment(ENV):
        from django.db import transaction
        from django.db.models import Q
        from django.db.models.functions import Now

        from jobs.models import Job, JobEvent, JobEventKind, JobStatus
        from jobs.queues.services import rate_limit_set
        from jobs.services import gates
        from jobs.services.execution import EARLY_DELIVERY, job_start

        owner = common.make_user("bench")
        spec = {"owner": owner, "celery_task_name": "jobs.tasks.common_tasks.long_running_task", "name": "bench"}
        names = ("before", "no control", "before, limit set", "other queue", "rate limited")
        queue_of = {"rate limited": "low_priority"}
        pending = {
            name: iter(
                Job.objects.bulk_create(
                    [Job(queue=queue_of.get(name, "default"), priority="normal", **spec) for _ in range(rounds + 1)],
                    batch_size=1000,
                )
            )
            for name in names
        }

        def start_before(name: str):
            def start() -> None:
                job = next(pending[name])
                due = Q(run_at__isnull=True) | Q(run_at__lte=Now() + EARLY_DELIVERY)
                changes = {"status": JobStatus.RUNNING, "started_at": Now(), "heartbeat_at": Now(), "worker": "b:1"}
                with transaction.atomic():
                    query = Job.objects.filter(due, id=job.id, status=JobStatus.PENDING, attempts=0)
                    assert query.update(**changes, finished_at=None) == 1
                    JobEvent.objects.create(job_id=job.id, kind=JobEventKind.STARTED, actor_label="worker b:1")

            return start

        def start_now(name: str):
            def start() -> None:
                assert job_start(job_id=next(pending[name]).id, worker="b:1", attempts=0) is not None

            return start

        print(f"# {rounds} starts per variant")
        timings = common.interleaved({"before": start_before("before"), "no control": start_now("no control")}, rounds)
        rate_limit_set(scope="queue", name="low_priority", limit=10_000, period=1, by=None, source="command")
        timings.update(
            common.interleaved(
                {
                    "before, limit set": start_before("before, limit set"),
                    "other queue": start_now("other queue"),
                    "rate limited": start_now("rate limited"),
                },
                rounds,
            )
        )
        base = {
            name: common.median_ms(timings["before" if i < 2 else "before, limit set"]) for i, name in enumerate(names)
        }
        common.print_table(
            "job_start on PostgreSQL (ms per start); the last three with a 10,000 per 1 s limit on low_priority",
            ["variant", "median", "p90", "vs before"],
            [
                [
                    name,
                    common.median_ms(timings[name]),
                    common.p90_ms(timings[name]),
                    f"{common.median_ms(timings[name]) - base[name]:+.3f}",
                ]
                for name in names
            ],
        )
        from jobs.queues.services import rate_limit_clear

        rate_limit_clear(scope="queue", name="low_priority", by=None, source="command")

        gates.limits_for(queue="default", task="x")
        calls = 200_000
        started = time.perf_counter()
        for _ in range(calls):
            gates.limits_for(queue="default", task="jobs.tasks.common_tasks.long_running_task")
        lookup_ns = (time.perf_counter() - started) / calls * 1e9
        paused = common.interleaved(
            {
                "fresh": lambda: gates.paused_queues({"default"}),
                "cached": lambda: gates.paused_queues({"default"}, fresh=False),
            },
            rounds,
        )
        common.print_table(
            "the checks alone",
            ["check", "per call"],
            [
                ["rate-limit cache lookup (warm, no limit on the queue)", f"{lookup_ns:.0f} ns"],
                ["paused_queues() (the sweep's: a query)", f"{common.median_ms(paused['fresh']):.3f} ms"],
                [
                    "paused_queues(fresh=False) (job_dispatch's, nothing paused: the cache)",
                    f"{common.median_ms(paused['cached']) * 1000:.1f} us",
                ],
            ],
        )
        no_control = common.median_ms(timings["no control"])
        print(f"\nratios: start with queue control, nothing set / before = {no_control / base['no control']:.2f}")


if __name__ == "__main__":
    main()
