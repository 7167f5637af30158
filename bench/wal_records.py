#!/usr/bin/env python
"""Where an ordinary job's WAL goes, record by record: the product's own statements, no worker.

Issue 20 (Performance II) asks for at most 2.0 KB of WAL per job. ``throughput.py`` measures it end to
end through the worker, ``row_shape.py`` on copies of the table with hand-written statements; this
script runs what the API and the worker run, in-process and one job at a time: ``-n`` jobs created by
``job_create_bulk`` (the bulk API's service, 500 per call), each started and succeeded through the
services the worker calls (``job_start`` / ``job_succeed``: one transaction each), after a warm-up
of 50 and a ``CHECKPOINT``. ``pg_waldump`` reads the WAL back (this database's records only): bytes per
job by relation and record type (with full-page images, marked ``FPW``), B-tree entries per job,
and the commits. None of it moves with the machine's noise.

Own database taskhub_bench_wal_records, own Redis db 6 (the creates send their messages there; no
worker reads them).
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_wal_records", redis_db=6)
RECORD = re.compile(r"rmgr: (\w+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+),.*?desc: (\S+)(.*)")
WORKER = "celery@bench:1"
ITEM = {
    "name": "bench",
    "task_type": "bench",
    "celery_task_name": "jobs.tasks.common_tasks.long_running_task",
    "kwargs": {"seconds": 0},
}


def lifecycle(owner, n: int) -> None:
    """``n`` jobs created in bulk, then each started and succeeded through the services the worker calls."""
    from jobs.services.creation import job_create_bulk
    from jobs.services.execution import job_start, job_succeed

    for first in range(0, n, 500):
        for job in job_create_bulk(owner=owner, items=[ITEM] * min(500, n - first)):
            started = job_start(job_id=job.id, worker=WORKER)
            job_succeed(job_id=job.id, attempts=started.attempts, result={"slept": 0}, worker=WORKER)


def main() -> int:
    args = common.parse_args(__doc__, lambda parser: parser.add_argument("-n", type=int, help="jobs"))
    n = args.n or (200 if args.quick else 1_000)
    with common.bench_environment(ENV):
        from django.db import connection

        owner = common.make_user("bench-wal")
        lifecycle(owner, 50)
        meter = common.WalMeter(ENV.database)
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
        start = meter.lsn()
        lifecycle(owner, n)
        end = meter.lsn()
        with connection.cursor() as cursor:
            cursor.execute("SELECT relfilenode::text, relname FROM pg_class WHERE relfilenode <> 0")
            names = dict(cursor.fetchall())
        dump = meter.dump(start, end)
    if not dump:
        return 1
    found: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    records = [match.groups() for match in map(RECORD.search, dump.splitlines()) if match]
    # A commit names no relation: ours are those of the transactions that wrote this database's relations.
    ours = {tx for _, _, _, tx, _, rest in records if re.search(rf"rel \d+/{meter.oid}/", rest)}
    without_images = 0
    for rmgr, record_size, size, tx, desc, rest in records:
        relation = re.search(r"rel \d+/(\d+)/(\d+)", rest)
        if relation and relation.group(1) != meter.oid:
            continue
        if relation is None and not (rmgr == "Transaction" and desc.startswith("COMMIT") and tx in ours):
            continue
        name = names.get(relation.group(2), relation.group(2)) if relation else "(commit)"
        key = (name, f"{rmgr} {desc}{' FPW' if 'FPW' in rest else ''}")
        found[key][0] += 1
        found[key][1] += int(size)
        without_images += int(record_size)
    rows = sorted(found.items(), key=lambda item: -item[1][1])
    common.print_table(
        f"WAL per job by relation and record ({n:,} jobs created in bulk, started and succeeded; 1 B and up)",
        ["relation", "record", "records / job", "bytes / job", "bytes / record"],
        [[name, kind, count / n, size / n, size / count] for (name, kind), (count, size) in rows if size / n >= 1],
    )
    total = sum(size for _, size in found.values()) / n
    btree = sum(count for (_, kind), (count, _) in found.items() if kind.startswith("Btree INSERT_")) / n
    commits = sum(size for (name, _), (_, size) in found.items() if name == "(commit)") / n
    print(
        f"\nratios: WAL per job {total:,.0f} B (issue 20: <= 2,000 B; {without_images / n:,.0f} B without full-page "
        f"images, which the cluster's checkpoints move), of which {commits:.0f} B commits; "
        f"{btree:.1f} B-tree entries per job"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
