"""What the shape of the job row costs in WAL: the same job lifecycle written to three shapes.

Performance II asks for fewer index entries per write and names two ways: the columns that change on
every run kept out of every index (so that updates can be HOT), or a small hot state table beside a
cold one with the search, GIN and reporting indexes. Before reshaping the code, this measures the
shapes with the statements alone, in the benchmark's own database (WalMeter: its WAL records only):

* ``today``: a copy of ``jobs_job`` and ``jobs_jobevent`` with every index (``LIKE … INCLUDING ALL``,
  the same fillfactor); a job is inserted with its ``created`` line, started with its ``started`` line,
  finished with its ``succeeded`` line (what the worker's statements write, without the CTEs).
* ``derived lines``: the same row, and only the ``started`` line: ``created`` and ``succeeded``
  derived from the row's own columns.
* ``hot/cold``: the cold row (identity, arguments, result; the list's, search and GIN indexes, none
  on a column a run changes) beside a narrow state row (status, times, worker, progress; the status,
  quota, gauge and sweeper indexes); ``started`` line only. A start and a finish update the state
  row; the finish writes the result into the cold row as a HOT update.

Jobs are created 500 per statement (the bulk API), then started and finished one statement at a time
(workers), ``-n`` jobs per shape. Prints WAL bytes, records and B-tree index entries per job, and the
bytes by relation.
"""

from __future__ import annotations

import sys
import time

from _common import WalMeter, bench_environment, configure, parse_args, print_table

ENV = configure(database="taskhub_bench_row_shape", redis_db=4)
BATCH = 500

COLD_INDEXES = ("job_owner_created", "job_created", "jobs_job_pkey")  # the list orders left by 0020


def _setup(cursor) -> None:
    cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'jobs_job'")
    options = cursor.fetchone()[0] or []
    storage = f" WITH ({', '.join(options)})" if options else ""
    for name in ("today", "derived"):
        cursor.execute(f"CREATE TABLE {name}_job (LIKE jobs_job INCLUDING ALL){storage}")
        cursor.execute(f"CREATE TABLE {name}_event (LIKE jobs_jobevent INCLUDING ALL)")
    # hot/cold: the cold row keeps the list's and the search's indexes; the state row the others.
    cursor.execute(f"CREATE TABLE cold_job (LIKE jobs_job INCLUDING DEFAULTS INCLUDING CONSTRAINTS){storage}")
    cursor.execute("ALTER TABLE cold_job ADD PRIMARY KEY (id)")
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'jobs_job' AND indexname = ANY(%s)", [list(COLD_INDEXES)]
    )
    for (definition,) in cursor.fetchall():
        if "UNIQUE" not in definition:
            cursor.execute(definition.replace("ON public.jobs_job", "ON cold_job").replace("INDEX job_", "INDEX cold_"))
    for column, empty in (("args", "'[]'"), ("kwargs", "'{}'")):
        cursor.execute(
            f"CREATE INDEX cold_{column}_gin ON cold_job USING gin ({column} jsonb_path_ops) "
            f"WHERE {column} <> {empty}::jsonb"
        )
    cursor.execute(
        f"""CREATE TABLE cold_state (
            job_id uuid PRIMARY KEY, owner_id bigint NOT NULL, queue varchar(50) NOT NULL,
            celery_task_name varchar(200) NOT NULL, created_at timestamptz NOT NULL,
            status varchar(10) NOT NULL, progress smallint NOT NULL DEFAULT 0,
            progress_meta jsonb NOT NULL DEFAULT '{{}}', attempts int NOT NULL DEFAULT 0,
            worker varchar(255) NOT NULL DEFAULT '', dispatched_at timestamptz, started_at timestamptz,
            finished_at timestamptz, heartbeat_at timestamptz, cancel_requested_at timestamptz){storage}"""
    )
    for definition in (
        "CREATE INDEX s_status_created ON cold_state (status, created_at DESC, job_id DESC)",
        "CREATE INDEX s_owner_active ON cold_state (owner_id) WHERE status IN ('pending', 'running')",
        "CREATE INDEX s_active_queue_task ON cold_state (status, queue, celery_task_name) "
        "WHERE status IN ('pending', 'running')",
        "CREATE INDEX s_running ON cold_state (started_at) WHERE status = 'running'",
        "CREATE INDEX s_finished ON cold_state (finished_at) WHERE finished_at IS NOT NULL",
        "CREATE INDEX s_undispatched ON cold_state (created_at) WHERE status = 'pending' AND dispatched_at IS NULL",
    ):
        cursor.execute(definition)
    cursor.execute("CREATE TABLE cold_event (LIKE jobs_jobevent INCLUDING ALL)")


JOB_COLUMNS = (
    "id, owner_id, name, task_type, celery_task_name, args, kwargs, priority, queue, status, progress, "
    "progress_meta, error, error_type, traceback, attempts, max_retries, created_at, dispatched_at, worker, "
    "request_fingerprint"
)
JOB_VALUES = (
    "gen_random_uuid(), %(owner)s, 'bench', 'bench', 'jobs.tasks.common_tasks.long_running_task', '[]', "
    "'{\"seconds\": 0}', 'normal', 'default', 'pending', 0, '{}', '', '', '', 0, 0, now() + g * interval '1 us', "
    "now(), '', ''"
)
LINE = (
    "INSERT INTO {table} (job_id, at, kind, from_status, to_status, actor_label, message, data) "
    "VALUES (%s, now(), %s, %s, %s, 'worker w:1', '', '{{}}')"
)


def _lifecycle(cursor, shape: str, n: int, owner: int) -> None:
    job = "cold_job" if shape == "hot/cold" else f"{shape.split()[0]}_job"
    event = job.replace("_job", "_event")
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        cursor.execute(
            f"INSERT INTO {job} ({JOB_COLUMNS}) SELECT {JOB_VALUES} FROM generate_series(1, %(n)s) g RETURNING id",
            {"owner": owner, "n": count},
        )
        ids = [row[0] for row in cursor.fetchall()]
        if shape == "hot/cold":
            cursor.execute(
                "INSERT INTO cold_state (job_id, owner_id, queue, celery_task_name, created_at, status, dispatched_at) "
                "SELECT id, owner_id, queue, celery_task_name, created_at, status, dispatched_at FROM cold_job "
                "WHERE id = ANY(%s)",
                [ids],
            )
        if shape == "today":
            cursor.execute(
                f"INSERT INTO {event} (job_id, at, kind, from_status, to_status, actor_label, message, data) "
                "SELECT id, now(), 'created', '', 'pending', '', 'Created (bulk) on queue default with priority "
                "normal.', '{}' FROM unnest(%s::uuid[]) id",
                [ids],
            )
        for job_id in ids:
            state = "cold_state" if shape == "hot/cold" else job
            key = "job_id" if shape == "hot/cold" else "id"
            cursor.execute(
                f"UPDATE {state} SET status = 'running', started_at = now(), heartbeat_at = now(), worker = 'w:1' "
                f"WHERE {key} = %s AND status = 'pending'",
                [job_id],
            )
            cursor.execute(LINE.format(table=event), [job_id, "started", "pending", "running"])
        for job_id in ids:
            if shape == "hot/cold":
                cursor.execute(
                    "UPDATE cold_state SET status = 'succeeded', finished_at = now(), heartbeat_at = now(), "
                    "progress = 100 WHERE job_id = %s AND status = 'running'",
                    [job_id],
                )
                cursor.execute("UPDATE cold_job SET result = 'null' WHERE id = %s", [job_id])
            else:
                cursor.execute(
                    f"UPDATE {job} SET status = 'succeeded', finished_at = now(), heartbeat_at = now(), "
                    "progress = 100, result = 'null' WHERE id = %s AND status = 'running'",
                    [job_id],
                )
            if shape == "today":
                cursor.execute(LINE.format(table=event), [job_id, "succeeded", "running", "succeeded"])


def main() -> int:
    args = parse_args(__doc__, lambda p: p.add_argument("-n", type=int, help="jobs per shape"))
    n = args.n or (1_000 if args.quick else 5_000)
    with bench_environment(ENV):
        from django.db import connection

        from accounts.models import User

        owner = User.objects.create(username="bench-row-shape").id
        meter = WalMeter(ENV.database)
        with connection.cursor() as cursor:
            _setup(cursor)
        rows, by_relation = [], {}
        for shape in ("today", "derived lines", "hot/cold"):
            start = meter.lsn()
            started = time.perf_counter()
            with connection.cursor() as cursor:
                _lifecycle(cursor, shape, n, owner)
            seconds = time.perf_counter() - started
            wal = meter.measure(start, meter.lsn())
            rows.append([shape, wal["bytes"] / n, wal["records"] / n, wal["index_entries"] / n, seconds * 1e6 / n])
            by_relation[shape] = sorted(meter.by_relation.items(), key=lambda item: -item[1])
        print_table(
            f"one job's insert (500 per statement), start and finish, {n:,} jobs per shape (autocommit)",
            ["shape", "WAL bytes / job", "WAL records / job", "B-tree entries / job", "µs / job (noisy)"],
            rows,
        )
        for shape, sizes in by_relation.items():
            print_table(
                f"{shape}: WAL bytes per job by relation", ["relation", "bytes"], [[k, v / n] for k, v in sizes]
            )
        today = rows[0][1]
        print(
            "\nratios: WAL per job vs today: "
            + ", ".join(f"{row[0]} {row[1] / today:.2f}x ({row[1]:,.0f} B)" for row in rows[1:])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
