#!/usr/bin/env python
"""What a bulk create costs the creating process: ``job_create_bulk`` of 500 jobs in-process (what
``POST /api/v1/jobs/bulk/`` calls), rounds of it after a warm-up: wall ms (median and best), the
SQL statements it sent, and the round trips to the Redis broker that carried its messages (each
write of redis-py's connection is one round trip; a pipeline's commands go in one).

    .venv/bin/python bench/bulk_send.py [--quick]

To compare with another commit, run the script from an export of that commit. Own database
taskhub_bench_bulk_send, own Redis db 4 (no worker: the messages stay in the queue, flushed with it).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_bulk_send", redis_db=4)
JOBS = 500


def main() -> int:
    args = common.parse_args(__doc__)
    rounds = 4 if args.quick else 12
    with common.bench_environment(ENV):
        from django.db import connection
        from redis.connection import AbstractConnection

        from jobs.services.creation import job_create_bulk

        owner = common.make_user("bench-bulk-send")
        sends: list[bytes] = []
        send = AbstractConnection.send_packed_command

        def record(self, command, check_health=True):
            sends.append(command if isinstance(command, bytes) else b"".join(command))
            return send(self, command, check_health)

        AbstractConnection.send_packed_command = record
        items = [{"celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}] * JOBS
        job_create_bulk(owner=owner, items=items[:10])  # connections, the queue's binding
        times, statements, trips = [], [], []
        count = [0]

        def counted(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)

        for _ in range(rounds):
            sends.clear()
            count[0] = 0
            started = time.perf_counter()
            with connection.execute_wrapper(counted):
                job_create_bulk(owner=owner, items=items)
            times.append((time.perf_counter() - started) * 1000)
            statements.append(count[0])
            trips.append(sum(1 for sent in sends if b"LPUSH" in sent))
        print(f"# load average at the end: {common.load_average()}")
    common.print_table(
        f"job_create_bulk of {JOBS} jobs in-process, {rounds} rounds after a warm-up (Redis broker)",
        ["median ms", "best ms", "ms per job (median)", "statements", "broker round trips"],
        [
            [
                statistics.median(times),
                min(times),
                statistics.median(times) / JOBS,
                statistics.median(statements),
                statistics.median(trips),
            ]
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
