#!/usr/bin/env python
"""What prepared statements save PostgreSQL on the job path (DATABASE_PREPARED_STATEMENTS).

In this process, without a worker or a broker round trip in the timing: ``n`` jobs are created in
bulks of 500 (``job_create_bulk``), then each is started and finished through the services a worker
calls (``job_start``, ``job_succeed``), once with the connection's ``prepare_threshold`` at None
(``DATABASE_PREPARED_STATEMENTS=false``) and once at 5 (the default), alternating, ``--rounds`` times.
Printed per job: the CPU of the PostgreSQL backend serving this process (/proc), the wall time, this
process's CPU, and the statements the two services ran (the same either way). The owner is a plain
user, so each start also counts their running jobs (fair shares).

Own database taskhub_bench_prepared, own Redis db 4 (the creates' messages, never consumed).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_prepared", redis_db=4)
BATCH = 500
MODES = {"unprepared (DATABASE_PREPARED_STATEMENTS=false)": None, "prepared (default)": 5}


def run(job_ids: list) -> None:
    """Start and finish each job as a worker's task base does."""
    from jobs.services.execution import job_start, job_succeed

    for job_id in job_ids:
        job = job_start(job_id=job_id, worker="bench:1", attempts=0)
        job_succeed(job_id=job_id, attempts=job.attempts, result=None, worker="bench:1")


def one_round(owner, n: int, threshold: int | None) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs.services.creation import job_create_bulk

    item = {"name": "bench", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
    ids = []
    for first in range(0, n, BATCH):
        ids += [job.id for job in job_create_bulk(owner=owner, items=[item] * min(BATCH, n - first))]
    connection.ensure_connection()
    connection.connection.prepare_threshold = threshold
    backend = connection.connection.info.backend_pid
    pg_before, wall_before, own_before = (
        common.cpu_seconds([backend])[backend],
        time.perf_counter(),
        time.process_time(),
    )
    run(ids)
    pg_after, wall_after, own_after = common.cpu_seconds([backend])[backend], time.perf_counter(), time.process_time()
    # The statements of a few more jobs, counted outside the timing (the query log costs CPU).
    counted = [job.id for job in job_create_bulk(owner=owner, items=[item] * 20)]
    with CaptureQueriesContext(connection) as queries:
        run(counted)
    statements = [q for q in queries.captured_queries if q["sql"].split()[0] not in ("SAVEPOINT", "RELEASE")]
    return {
        "postgres": 1000 * (pg_after - pg_before) / n,
        "wall": 1000 * (wall_after - wall_before) / n,
        "process": 1000 * (own_after - own_before) / n,
        "statements": len(statements) / len(counted),
    }


def main() -> int:
    args = common.parse_args(
        __doc__,
        lambda p: (
            p.add_argument("-n", type=int, help="jobs per round"),
            p.add_argument("--rounds", type=int, default=3),
        ),
    )
    n = args.n or (500 if args.quick else 2_000)
    with common.bench_environment(ENV):
        import django

        django.setup()
        print(f"# load average at the start: {common.load_average()}")
        owner = common.make_user("bench-prepared")
        figures: dict[str, list[dict[str, float]]] = {label: [] for label in MODES}
        for _ in range(args.rounds):
            for label, threshold in MODES.items():
                figures[label].append(one_round(owner, n, threshold))
    rows = []
    for label, rounds in figures.items():
        rows.append(
            [label]
            + [" / ".join(f"{r[key]:.3f}" for r in rounds) for key in ("postgres", "wall", "process")]
            + [statistics.median(r["statements"] for r in rounds)]
        )
    common.print_table(
        f"a job's start and success in-process, {n:,} jobs a round, {args.rounds} rounds alternating (ms per job, "
        "each round)",
        ["statements", "PostgreSQL CPU", "wall", "this process's CPU", "statements per job"],
        rows,
    )
    unprepared, prepared = (statistics.median(r["postgres"] for r in figures[label]) for label in MODES)
    print(
        f"\nratios: PostgreSQL CPU per job unprepared/prepared = {common.ratio(unprepared, prepared)} "
        f"({unprepared:.3f} vs {prepared:.3f} ms, medians)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
