#!/usr/bin/env python
"""Cleanup memory: the batched retention service vs a naive queryset delete of the same old jobs.

    python bench/cleanup_memory.py [--quick] [-n 200000]

The table holds ``n`` old finished jobs (succeeded/failed/revoked, finished 31-400 days ago, two
timeline rows each) plus 2,000 active jobs (pending, running: created 400 days ago) and 2,000
young finished ones (finished a day ago). They are written once with COPY (rows built from the
models' own field defaults), kept in snapshot tables, and restored before each run, so every
run deletes exactly the same rows. Each run deletes every finished job older than 30 days:

* ``job_purge_finished(older_than=30d, batch_size=1,000)`` on a quarter of the old jobs, then on
  all of them (memory must not grow with the rows);
* the same with ``batch_size=10,000`` (the largest allowed);
* baseline: ``Job.objects.filter(<the same rows>).delete()``, one queryset delete, the naive way.

Then the performance issue's figure: ``manage.py cleanup_jobs --older-than 30d`` as an operator
runs it, a process of its own, on ``--target`` old finished jobs (1,000,000; ``--quick``:
50,000): jobs/s, rows/s (jobs and timeline rows) and the process's peak RSS (its ``VmHWM``,
read until it exits), against the target of 20,000 rows/s under 200 MB. The snapshot holds the
larger of ``n`` and the target; the comparisons restore the ``n`` oldest. The metrics (which a purge
brings up to date before it deletes) are brought up to date once after writing the rows, as
beat's pass keeps them in production.

Each run happens twice on the same restored rows: once plain, for the wall time and the growth
of the process's peak RSS (``ru_maxrss``; the baseline runs last, since that figure never goes
down), and once under tracemalloc for the peak of Python allocations (tracing slows Python code
down several times, so it is not timed). After every run the active and young jobs are counted:
untouched, or the script fails.

Own database taskhub_bench_cleanup, own Redis db 6 (unused: nothing is sent).
"""

from __future__ import annotations

import gc
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_cleanup", redis_db=6)

OLDER_THAN = timedelta(days=30)
ACTIVE = 2_000
YOUNG = 2_000
MIB = 1024 * 1024
TARGET_ROWS_PER_SECOND = 20_000
TARGET_PEAK_MB = 200


def _copy(model, rows: Iterator[dict]) -> int:
    """COPY ``rows`` (attname -> value; other fields take the model's default) into ``model``'s table."""
    from django.db import connection
    from django.db.models.fields import AutoFieldMixin

    fields = [field for field in model._meta.concrete_fields if not isinstance(field, AutoFieldMixin)]
    template = model()
    defaults = {field.attname: getattr(template, field.attname) for field in fields}
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    count = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            values = {**defaults, **row}
            copy.write_row([field.get_db_prep_save(values[field.attname], connection) for field in fields])
            count += 1
    return count


def populate(owner, old: int) -> None:
    """Write the jobs and their timelines once, then keep them in snapshot tables."""
    from django.db import connection
    from django.utils import timezone

    from jobs.models import PRIORITY_QUEUES, Job, JobEvent, JobStatus

    now = timezone.now()
    finished = [JobStatus.SUCCEEDED] * 8 + [JobStatus.FAILED, JobStatus.REVOKED]
    ids: list[uuid.UUID] = []

    def job(index: int, status: str, finished_at, created_at) -> dict:
        job_id = uuid.uuid4()
        ids.append(job_id)
        return {
            "id": job_id,
            "owner_id": owner.id,
            "name": f"report {index}",
            "task_type": "report",
            "celery_task_name": "jobs.tasks.common_tasks.process_data",
            "args": [],
            "kwargs": {"csv_text": "a,b\n1,2\n"},
            "priority": "normal",
            "queue": PRIORITY_QUEUES["normal"],
            "status": status,
            "progress": 100 if status == JobStatus.SUCCEEDED else 40,
            "progress_meta": {"message": "done"},
            "result": {"records": 1, "fields": {"a": {"sum": 1.0}}} if status == JobStatus.SUCCEEDED else None,
            "error": "" if status == JobStatus.SUCCEEDED else "ValueError: bad row",
            "created_at": created_at,
            "started_at": created_at if finished_at else None,
            "finished_at": finished_at,
            "worker": "celery@bench:1234",
        }

    def jobs() -> Iterator[dict]:
        span = (400 - 31) * 86400
        for index in range(old):  # finished 31 to 400 days ago, distinct times
            finished_at = now - timedelta(days=31, seconds=index * span // max(old, 1))
            yield job(index, finished[index % len(finished)], finished_at, finished_at - timedelta(minutes=1))
        for index in range(ACTIVE):
            status = JobStatus.PENDING if index % 2 else JobStatus.RUNNING
            yield job(old + index, status, None, now - timedelta(days=400, seconds=index))
        for index in range(YOUNG):
            finished_at = now - timedelta(days=1, seconds=index)
            yield job(old + ACTIVE + index, finished[index % len(finished)], finished_at, finished_at)

    def events() -> Iterator[dict]:
        for job_id in ids:
            yield {"job_id": job_id, "at": now, "kind": "created", "to_status": "pending", "actor_label": "bench"}
            yield {"job_id": job_id, "at": now, "kind": "started", "from_status": "pending", "to_status": "running"}

    started = time.perf_counter()
    count = _copy(Job, jobs())
    event_count = _copy(JobEvent, events())
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_job AS SELECT * FROM jobs_job")
        cursor.execute("CREATE TABLE bench_jobevent AS SELECT * FROM jobs_jobevent")
        # The old jobs in the order the purge deletes them (created_at), for partial restores.
        cursor.execute(
            "CREATE TABLE bench_old AS SELECT id, row_number() OVER (ORDER BY created_at, id) AS rank "
            "FROM jobs_job WHERE status IN ('succeeded', 'failed', 'revoked') AND finished_at < %s",
            [now - OLDER_THAN],
        )
    print(f"# wrote {count:,} jobs and {event_count:,} timeline rows with COPY in {time.perf_counter() - started:.1f}s")


def restore(old: int) -> None:
    """The table as populated, with only the ``old`` oldest of the old jobs."""
    from django.db import connection

    with connection.cursor() as cursor:
        # Every table referencing jobs_job goes with it (its timeline, workflow edges: none here;
        # naming them failed once a new one appeared).
        cursor.execute("TRUNCATE jobs_job CASCADE")
        # An anti-join (NOT EXISTS): NOT IN over a subquery larger than work_mem is not hashed and
        # compares every row with every excluded id (it ran for minutes with 1,000,000 old jobs).
        skip = "NOT EXISTS (SELECT 1 FROM bench_old o WHERE o.id = {column} AND o.rank > %s)"
        cursor.execute(f"INSERT INTO jobs_job SELECT * FROM bench_job j WHERE {skip.format(column='j.id')}", [old])
        cursor.execute(
            f"INSERT INTO jobs_jobevent SELECT * FROM bench_jobevent e WHERE {skip.format(column='e.job_id')}", [old]
        )
        cursor.execute("VACUUM ANALYZE jobs_job, jobs_jobevent")


def timed(delete: Callable[[], object]) -> dict:
    gc.collect()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    delete()
    wall = time.perf_counter() - started
    return {"wall": wall, "rss": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss) / 1024}


def traced(delete: Callable[[], object]) -> dict:
    gc.collect()
    tracemalloc.start()
    try:
        delete()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"peak": peak / MIB}


def counts() -> dict[str, int]:
    from django.db.models import Count, Q
    from django.utils import timezone

    from jobs.models import ACTIVE_STATUSES, Job, JobEvent

    cutoff = timezone.now() - OLDER_THAN
    totals = Job.objects.aggregate(
        active=Count("id", filter=Q(status__in=ACTIVE_STATUSES)),
        young=Count("id", filter=~Q(status__in=ACTIVE_STATUSES) & Q(finished_at__gte=cutoff)),
        old=Count("id", filter=~Q(status__in=ACTIVE_STATUSES) & Q(finished_at__lt=cutoff)),
    )
    return {**totals, "events": JobEvent.objects.count()}


def naive_delete() -> None:
    """What one would write first: the same rows, one queryset, one delete()."""
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from jobs.models import TERMINAL_STATUSES, Job

    cutoff = timezone.now() - OLDER_THAN
    Job.objects.filter(status__in=TERMINAL_STATUSES).alias(age=Coalesce("finished_at", "created_at")).filter(
        age__lt=cutoff
    ).delete()


def run(label: str, old: int, delete: Callable[[], object]) -> list:
    figures, events = {}, 0
    for measure in (timed, traced):
        restore(old)
        before = counts()
        if before["old"] != old or before["active"] != ACTIVE or before["young"] != YOUNG:
            raise SystemExit(f"restore went wrong: {before}")
        figures.update(measure(delete))
        after = counts()
        if (after["old"], after["active"], after["young"]) != (0, ACTIVE, YOUNG):
            raise SystemExit(f"{label}: expected only the old finished jobs gone, found {after}")
        events = before["events"] - after["events"]
    print(f"# {label}: {old:,} jobs, {events:,} timeline rows, {figures['wall']:.1f}s", flush=True)
    return [label, old, events, figures["wall"], old / figures["wall"], figures["peak"], figures["rss"]]


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), 0 once it is gone. Not ``wait4``'s
    ``ru_maxrss``: that one keeps the high-water mark of the forking parent (this process, large
    after writing the rows) across the child's exec."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_command(old: int) -> list:
    """``manage.py cleanup_jobs`` in a process of its own on ``old`` old finished jobs: the
    operator's command, with the production settings (batch size JOB_RETENTION_BATCH_SIZE)."""
    restore(old)
    before = counts()
    if before["old"] != old or before["active"] != ACTIVE or before["young"] != YOUNG:
        raise SystemExit(f"restore went wrong: {before}")
    command = [sys.executable, "manage.py", "cleanup_jobs", "--older-than", "30d"]
    with tempfile.TemporaryFile(mode="w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=common.ROOT, stdout=output, stderr=subprocess.STDOUT)
        peak_kib = 0
        while process.poll() is None:
            peak_kib = max(peak_kib, _peak_rss_kib(process.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - started
        output.seek(0)
        printed = output.read()
    if process.returncode != 0:
        raise SystemExit(f"cleanup_jobs exited {process.returncode}:\n{printed}")
    after = counts()
    if (after["old"], after["active"], after["young"]) != (0, ACTIVE, YOUNG):
        raise SystemExit(f"cleanup_jobs: expected only the old finished jobs gone, found {after}")
    events = before["events"] - after["events"]
    peak = peak_kib / 1024
    print(f"# manage.py cleanup_jobs: {old:,} jobs, {events:,} timeline rows, {wall:.1f}s, peak RSS {peak:.0f} MiB")
    print("\n".join(f"#   {line}" for line in printed.strip().splitlines()))
    return [old, events, wall, old / wall, (old + events) / wall, peak]


def main() -> int:
    def extra(parser):
        parser.add_argument("-n", type=int, help="old finished jobs for the comparisons")
        parser.add_argument("--target", type=int, help="old finished jobs for manage.py cleanup_jobs")

    args = common.parse_args(__doc__, extra)
    old = args.n or (20_000 if args.quick else 200_000)
    target = args.target or (50_000 if args.quick else 1_000_000)
    with common.bench_environment(ENV):
        from jobs.services.retention import job_purge_finished

        populate(common.make_user("bench-cleanup"), max(old, target))
        # The purge first brings the metrics up to date (their totals never go back); beat's pass
        # keeps them so in production. Here the rows were just written: count them once now, so
        # that every run below measures the deletion (restores re-insert the same counted rows).
        from jobs.services.metrics import metrics_advance

        started = time.perf_counter()
        counted = metrics_advance(until_done=True)
        print(f"# metrics brought up to date first, as beat keeps them: {time.perf_counter() - started:.1f}s {counted}")

        def batched(size: int) -> Callable[[], object]:
            return lambda: job_purge_finished(older_than=OLDER_THAN, batch_size=size)

        quarter = old // 4
        rows = [
            run("batched, batch_size=1,000, quarter of the rows", quarter, batched(1_000)),
            run("batched, batch_size=1,000", old, batched(1_000)),
            run("batched, batch_size=10,000", old, batched(10_000)),
            run("baseline: one queryset .delete()", old, naive_delete),
        ]
        command = run_command(target)
    common.print_table(
        f"Deleting the finished jobs older than 30 days ({ACTIVE:,} active and {YOUNG:,} young jobs stay)",
        ["run", "jobs deleted", "timeline rows", "s", "jobs/s", "tracemalloc peak MiB", "max RSS growth MiB"],
        rows,
    )
    jobs, events, wall, jobs_per_second, rows_per_second, peak = command
    met = rows_per_second >= TARGET_ROWS_PER_SECOND and peak < TARGET_PEAK_MB
    common.print_table(
        "manage.py cleanup_jobs --older-than 30d, a process of its own (production settings)",
        ["jobs deleted", "timeline rows", "s", "jobs/s", "rows/s", "peak RSS MiB", "target"],
        [
            (
                jobs,
                events,
                wall,
                jobs_per_second,
                rows_per_second,
                peak,
                f"{'met' if met else 'missed'} (>= {TARGET_ROWS_PER_SECOND:,} rows/s, < {TARGET_PEAK_MB} MB)",
            )
        ],
    )
    small, default, large, naive = rows
    print(
        f"\nratios: memory (tracemalloc peak) baseline/batched = {common.ratio(naive[5], default[5])} "
        f"(batch 1,000), {common.ratio(naive[5], large[5])} (batch 10,000); batched all/quarter rows = "
        f"{common.ratio(default[5], small[5])}; time baseline/batched(1,000) = {common.ratio(naive[3], default[3])}; "
        f"cleanup_jobs on {jobs:,} jobs: {rows_per_second:,.0f} rows/s ({jobs_per_second:,.0f} jobs/s), "
        f"peak RSS {peak:.0f} MiB ({'met' if met else 'missed'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
