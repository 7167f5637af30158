#!/usr/bin/env python
"""What a concurrency key costs a job start, in this process on PostgreSQL (no worker, no broker).

Compared, interleaved round-robin on pending jobs of the same table:

* no key: ``job_start`` of a job without a concurrency key (the start as before keys: its
  statement returns the two key columns more, and nothing else happens);
* own key: each job its own key, limit 1: the key's advisory lock and the count of its running jobs
  (the partial index ``job_concurrency_running``), in the start's transaction;
* shared key: every job the same key, limit above the rounds: the count reads every running job of
  the key, up to the number of rounds (a worst case: a key with that many jobs running at once);
* at the limit: a job of a key whose limit 1 is taken: the start is refused and the job waits (the
  rolled-back start, then the wait's transaction: its row lock, the key's lock and count, the UPDATE
  and its one timeline line).

Own database taskhub_bench_concurrency, own Redis db 5 (nothing is published).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_concurrency", redis_db=5)


def main() -> None:
    args = common.parse_args(__doc__)
    rounds = 300 if args.quick else 2000
    with common.bench_environment(ENV):
        from jobs.models import Job
        from jobs.services.execution import job_start

        owner = common.make_user("bench", is_staff=True)  # exempt from fair shares: only the key decides
        spec = {"owner": owner, "celery_task_name": "jobs.tasks.common_tasks.long_running_task", "name": "bench"}
        keys = {
            "no key": lambda i: {},
            "own key": lambda i: {"concurrency_key": f"own-{i}", "concurrency_limit": 1},
            "shared key": lambda i: {"concurrency_key": "shared", "concurrency_limit": rounds + 10},
            "at the limit": lambda i: {"concurrency_key": "full", "concurrency_limit": 1},
        }
        Job.objects.create(status="running", concurrency_key="full", concurrency_limit=1, queue="default", **spec)
        pending = {
            name: iter(
                Job.objects.bulk_create(
                    [Job(queue="default", priority="normal", **spec, **key(i)) for i in range(rounds + 1)],
                    batch_size=1000,
                )
            )
            for name, key in keys.items()
        }

        def start(name: str, *, starts: bool):
            def run() -> None:
                assert (job_start(job_id=next(pending[name]).id, worker="b:1", attempts=0) is not None) is starts

            return run

        print(f"# {rounds} starts per variant")
        timings = common.interleaved(
            {name: start(name, starts=name != "at the limit") for name in keys},
            rounds,
        )
        base = common.median_ms(timings["no key"])
        common.print_table(
            "job_start on PostgreSQL (ms per start)",
            ["variant", "median", "p90", "vs no key"],
            [
                [
                    name,
                    common.median_ms(timings[name]),
                    common.p90_ms(timings[name]),
                    f"{common.median_ms(timings[name]) - base:+.3f}",
                ]
                for name in keys
            ],
        )
        waiting = Job.objects.filter(concurrency_key="full", concurrency_waiting_since__isnull=False).count()
        print(f"\njobs waiting on the full key: {waiting} (one timeline line each)")


if __name__ == "__main__":
    main()
